// Load mode `open`: a fixed offered rate (open loop), latency from each request's due time.
import { encodeHistogram, makePayload, newHistogram, sleep } from '../../lib/common.mjs';
import { encodePublish, now, openMany } from '../client.mjs';
import { connectedSetup, lastLevel, topics } from '../topics.mjs';

/** Open loop: `rate` requests/s over `conns` connections, due in 1 ms buckets; latency from the due time. */
export async function open({ target, conns, rate, qos, payloadSize, warmupMs, measureMs, style = 'gate' }) {
  const payload = makePayload(payloadSize);
  const hist = newHistogram();
  const { clients, failed, errorSample } = await openMany(target, conns, { setup: connectedSetup(style) });
  if (clients.length === 0) throw new Error(`no connection: ${errorSample.join('; ')}`);
  const senders = clients.map((c) => {
    const t = topics(style, c.clientId);
    const pending = new Map();
    let seq = 0;
    let mid = 0;
    c.onPacket = (p) => {
      if (p.cmd !== 'publish') return;
      const key = lastLevel(p.topic);
      const entry = pending.get(key);
      if (entry === undefined) return;
      pending.delete(key);
      received++;
      if (entry.measured) {
        hist.recordValue(Math.max(1, Math.round((now() - entry.due) * 1000)));
        counted++;
      }
    };
    return {
      pending,
      send(due, measured) {
        const n = ++seq;
        mid = (mid % 65535) + 1;
        pending.set(String(n), { due, measured });
        c.send(encodePublish(t.request('echo', n), payload, qos, mid));
      },
    };
  });
  let received = 0;
  let counted = 0;
  let sent = 0;
  let sentMeasured = 0;
  let rr = 0;
  let maxLagMs = 0;
  const start = now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + measureMs;
  const perMs = rate / 1000;
  let bucket = 0;
  let carry = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const t = now();
      // every bucket whose due time has passed: send its share now (due = bucket start)
      while (start + bucket <= t && start + bucket < end) {
        const due = start + bucket;
        carry += perMs;
        const k = Math.floor(carry);
        carry -= k;
        const measured = due >= measureFrom;
        for (let i = 0; i < k; i++) {
          senders[rr++ % senders.length].send(due, measured);
          sent++;
          if (measured) sentMeasured++;
        }
        maxLagMs = Math.max(maxLagMs, t - due);
        bucket++;
      }
      if (t >= end) return resolve();
      setTimeout(tick, 1);
    };
    tick();
  });
  const deadline = now() + 3000;
  while (received < sent && now() < deadline) await sleep(20);
  for (const c of clients) c.end();
  await sleep(50);
  return {
    rateAsked: rate,
    sent,
    sentMeasured,
    replies: counted,
    rate: counted / (measureMs / 1000),
    lost: sent - received,
    hist: encodeHistogram(hist),
    maxScheduleLagMs: Math.round(maxLagMs * 1000) / 1000,
    connections: clients.length,
    failedConnections: failed,
    errorSample,
  };
}
