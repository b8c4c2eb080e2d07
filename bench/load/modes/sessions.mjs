// Load modes `sessOpen` / `sessTraffic` / `sessDrop` / `restore`: sessions bound to users (the
// mqgate `sess` module: HD_login binds, HD_set stores a setting), held across commands, for the
// Redis session-persistence scenarios.
import { encodeHistogram, newHistogram, sleep } from '../../lib/common.mjs';
import { Client, PINGREQ, encodePublish, now, openMany } from '../client.mjs';

/** Sends one request on `c` and resolves with the parsed envelope. */
function request(c, topic, body, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const prev = c.onPacket;
    const t = setTimeout(() => {
      c.onPacket = prev;
      reject(new Error(`no reply on ${topic}`));
    }, timeoutMs);
    c.onPacket = (p) => {
      if (p.cmd === 'publish' && p.topic === topic) {
        clearTimeout(t);
        c.onPacket = prev;
        try {
          resolve(JSON.parse(p.payload.toString()));
        } catch (err) {
          reject(err);
        }
      } else prev(p);
    };
    c.send(encodePublish(topic, Buffer.from(JSON.stringify(body)), 0, 0));
  });
}
async function login(c, userId, settings) {
  const env = await request(c, 'sess/HD_login/1', { userId });
  if (env.Error) throw new Error(`login: ${env.Error}`);
  let i = 0;
  for (const [key, value] of Object.entries(settings)) {
    const e = await request(c, `sess/HD_set/${++i + 1}`, { key, value });
    if (e.Error) throw new Error(`set: ${e.Error}`);
  }
  return env;
}
/** The session commands, over one pool of bound sessions that lives as long as the returned object. */
export function sessionCommands() {
  let pool = [];
  async function sessOpen({ target, users, settings, userPrefix }) {
    const t0 = now();
    const { clients, failed, errorSample } = await openMany(target, users, {
      concurrency: 50,
      opts: (i) => ({ clientId: `${userPrefix}${i}`, keepalive: 600 }),
      setup: (c, i) => login(c, `${userPrefix}${i}`, settings ?? {}),
    });
    pool.push(...clients);
    return { open: clients.length, failed, errorSample, seconds: (now() - t0) / 1000 };
  }
  async function sessTraffic({ mode, durationMs, everyMs = 1000 }) {
    if (mode === 'idle') {
      await sleep(durationMs);
      return { mode, sent: 0 };
    }
    // Every client sends once per `everyMs`: a slice of the pool every 50 ms.
    let sent = 0;
    let i = 0;
    let n = 0;
    const perTick = Math.max(1, Math.ceil((pool.length * 50) / everyMs));
    const end = now() + durationMs;
    while (now() < end) {
      for (let k = 0; k < perTick && pool.length > 0; k++) {
        const c = pool[i++ % pool.length];
        if (mode === 'ping') c.send(PINGREQ);
        else c.send(encodePublish(`echo/HD_echo/${++n}`, Buffer.from('{"a":1}'), 0, 0));
        sent++;
      }
      await sleep(50);
    }
    return { mode, sent };
  }
  async function sessDrop() {
    const n = pool.length;
    for (const c of pool) c.destroy();
    pool = [];
    await sleep(300);
    return { dropped: n };
  }
  return { sessOpen, sessTraffic, sessDrop, restore };
}

/** Reconnect and restore: connect + CONNACK + login (bind restores the stored settings); ms each. */
async function restore({ target, users, userPrefix, expectKeys, concurrency = 10 }) {
  const hist = newHistogram();
  let next = 0;
  let ok = 0;
  let missing = 0;
  const errors = new Set();
  async function worker() {
    while (next < users) {
      const i = next++;
      const t0 = now();
      const c = new Client(target, { clientId: `${userPrefix}${i}`, keepalive: 600 });
      try {
        await c.connect();
        const env = await request(c, 'sess/HD_login/1', { userId: `${userPrefix}${i}` });
        hist.recordValue(Math.max(1, Math.round((now() - t0) * 1000)));
        const got = env.Result?.settings ?? {};
        if (expectKeys.every((k) => k in got)) ok++;
        else missing++;
      } catch (err) {
        if (errors.size < 5) errors.add(String(err?.message ?? err));
      }
      c.end();
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { restored: ok, missing, errorSample: [...errors], hist: encodeHistogram(hist) };
}
