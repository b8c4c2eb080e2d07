// Load mode `fanout`: many sessions, one request makes the server push to all; time to the last.
import { newHistogram, sleep } from '../../lib/common.mjs';
import { Client, encodePublish, now, openMany } from '../client.mjs';
import { topics } from '../topics.mjs';

/** Push fan-out: `count` sessions connected; a request makes the server push to all; time to the last. */
export async function fanout({ target, count, rounds, style = 'gate' }) {
  const recv = { n: 0, done: undefined, t0: 0, last: 0, hist: null };
  const t0open = now();
  const { clients, failed, errorSample } = await openMany(target, count, {
    concurrency: 256,
    opts: () => ({ keepalive: 600 }),
    setup: async (c) => {
      const t = topics(style, c.clientId);
      if (style === 'mosquitto') await c.subscribe([t.pushTopic]);
      c.onPacket = (p) => {
        if (p.cmd !== 'publish' || p.topic !== t.pushTopic) return;
        const dt = now() - recv.t0;
        recv.hist?.recordValue(Math.max(1, Math.round(dt * 1000)));
        recv.last = Math.max(recv.last, dt);
        if (++recv.n === recv.expect) recv.done?.();
      };
    },
  });
  const openSeconds = (now() - t0open) / 1000;
  const trigger = new Client(target, { keepalive: 600 });
  await trigger.connect();
  const tt = topics(style, trigger.clientId);
  if (tt.subscribe) await trigger.subscribe(tt.subscribe);
  const results = [];
  await sleep(300);
  for (let r = 1; r <= rounds; r++) {
    recv.n = 0;
    recv.last = 0;
    recv.expect = clients.length;
    recv.hist = newHistogram();
    const done = new Promise((resolve) => (recv.done = resolve));
    recv.t0 = now();
    trigger.send(encodePublish(tt.broadcast(r), Buffer.from('{}'), 0, 0));
    const timedOut = await Promise.race([done.then(() => false), sleep(10000).then(() => true)]);
    results.push({
      received: recv.n,
      expected: clients.length,
      lastMs: Math.round(recv.last * 1000) / 1000,
      p50Ms: recv.hist.totalCount ? recv.hist.getValueAtPercentile(50) / 1000 : null,
      timedOut,
    });
    if (timedOut) break;
    await sleep(200);
  }
  trigger.end();
  for (const c of clients) c.destroy();
  await sleep(200);
  return { sessions: clients.length, failedConnections: failed, errorSample, openSeconds, rounds: results };
}
