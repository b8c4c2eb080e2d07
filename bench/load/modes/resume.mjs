// Load modes `resumeOpen` / `resumeDrop` / `resumeRun` / `resumeFanout` / `resumeClose`: bound
// sessions (the mqgate `sess` module's HD_login) with the resume token each gets on
// `gate/session`, held across commands; dropping them (no DISCONNECT); resuming them on new
// connections (`gate/HD_resume`), timed; push fan-out to the live ones.
import { encodeHistogram, newHistogram, sleep } from '../../lib/common.mjs';
import { Client, encodePublish, now, openMany } from '../client.mjs';

const PUSH_TOPIC = 'bench/push';

/** Publishes a QoS 0 request on `c`; resolves with `{reply, token}`: the parsed envelope and, when `withToken`, the next `gate/session` push. */
function request(c, topic, body, { withToken = false, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const prev = c.onPacket;
    let reply;
    let token;
    const t = setTimeout(() => {
      c.onPacket = prev;
      reject(new Error(reply ? `no gate/session push after ${topic}` : `no reply on ${topic}`));
    }, timeoutMs);
    const finish = () => {
      if (!reply || (withToken && !token && reply.Error === '')) return;
      clearTimeout(t);
      c.onPacket = prev;
      resolve({ reply, token });
    };
    c.onPacket = (p) => {
      if (p.cmd !== 'publish') return prev(p);
      if (p.topic === topic) reply = JSON.parse(p.payload.toString());
      else if (p.topic === 'gate/session') token = JSON.parse(p.payload.toString());
      else return prev(p);
      finish();
    };
    c.send(encodePublish(topic, Buffer.from(JSON.stringify(body)), 0, 0));
  });
}

/** The resume commands, over one pool of sessions `{client, userId, sessionId, token}` that lives as long as the returned object. */
export function resumeCommands() {
  let pool = [];
  const recv = { n: 0, expect: 0, t0: 0, last: 0, done: undefined };
  const onPush = (p) => {
    if (p.cmd !== 'publish' || p.topic !== PUSH_TOPIC) return;
    recv.last = Math.max(recv.last, now() - recv.t0);
    if (++recv.n === recv.expect) recv.done?.();
  };

  /** Opens `users` connections and logs each in as `${userPrefix}${i}`; keeps each with its token. */
  async function resumeOpen({ target, users, userPrefix, concurrency = 100 }) {
    const t0 = now();
    const sessions = [];
    const { failed, errorSample } = await openMany(target, users, {
      concurrency,
      opts: () => ({ keepalive: 600 }),
      setup: async (c, i) => {
        const userId = `${userPrefix}${i}`;
        const { reply, token } = await request(c, 'sess/HD_login/1', { userId }, { withToken: true });
        if (reply.Error) throw new Error(`login: ${reply.Error}`);
        c.onPacket = onPush;
        sessions.push({ client: c, userId, sessionId: token.sessionId, token: token.token });
      },
    });
    pool.push(...sessions);
    return { open: sessions.length, failed, errorSample, seconds: (now() - t0) / 1000, sessionIds: sessions.map((s) => s.sessionId) };
  }

  /** Drops (destroys, no DISCONNECT) the connections of the first `share` of the pool (all by default). */
  async function resumeDrop({ share = 1 }) {
    const n = Math.round(pool.length * share);
    for (const s of pool.slice(0, n)) {
      s.client.destroy();
      s.dropped = true;
    }
    return { dropped: n };
  }

  /**
   * Resumes every dropped session on a new connection, `concurrency` at a time: session i on
   * `targets[i % targets.length]`. Latency per target: TCP connect → CONNACK → HD_resume →
   * Result received (µs histogram). Resumed sessions stay in the pool, live again.
   */
  async function resumeRun({ targets, concurrency = 10 }) {
    const hists = targets.map(() => newHistogram());
    const ok = targets.map(() => 0);
    const errors = new Set();
    let failed = 0;
    const todo = pool.map((s, i) => [s, i]).filter(([s]) => s.dropped);
    let next = 0;
    async function worker() {
      while (next < todo.length) {
        const [s, i] = todo[next++];
        const g = i % targets.length;
        const c = new Client(targets[g], { keepalive: 600 });
        const t0 = now();
        try {
          await c.connect();
          const { reply, token } = await request(c, 'gate/HD_resume/1', { token: s.token }, { withToken: true });
          const dt = now() - t0;
          if (reply.Error !== '' || reply.Result?.sessionId !== s.sessionId)
            throw new Error(reply.Error || `resumed ${reply.Result?.sessionId}, not ${s.sessionId}`);
          hists[g].recordValue(Math.max(1, Math.round(dt * 1000)));
          ok[g]++;
          c.onPacket = onPush;
          Object.assign(s, { client: c, token: token.token, dropped: false });
        } catch (err) {
          failed++;
          if (errors.size < 5) errors.add(String(err?.message ?? err));
          c.destroy();
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
    return { attempted: todo.length, ok, failed, errorSample: [...errors], hists: hists.map(encodeHistogram) };
  }

  /**
   * Push fan-out from one more (guest) connection on `target`: `echo/HD_broadcast` makes the
   * gate push to every session; per round, ms until the last live pool session has it.
   */
  async function resumeFanout({ target, rounds }) {
    const live = pool.filter((s) => !s.dropped).length;
    const trigger = new Client(target, { keepalive: 600 });
    await trigger.connect();
    const out = [];
    for (let r = 1; r <= rounds; r++) {
      Object.assign(recv, { n: 0, expect: live, last: 0 });
      const done = new Promise((resolve) => (recv.done = resolve));
      recv.t0 = now();
      trigger.send(encodePublish(`echo/HD_broadcast/${r}`, Buffer.from('{}'), 0, 0));
      const timedOut = await Promise.race([done.then(() => false), sleep(15000).then(() => true)]);
      out.push({ received: recv.n, expected: live, lastMs: Math.round(recv.last * 1000) / 1000, timedOut });
      if (timedOut) break;
      await sleep(100);
    }
    trigger.end();
    return { live, rounds: out };
  }

  async function resumeClose() {
    const n = pool.length;
    for (const s of pool) s.client.destroy();
    pool = [];
    await sleep(200);
    return { closed: n };
  }

  return { resumeOpen, resumeDrop, resumeRun, resumeFanout, resumeClose };
}
