// Load mode `rr`: the closed loop (request/reply throughput and latency).
import { encodeHistogram, makePayload, newHistogram, sleep } from '../../lib/common.mjs';
import { encodePublish, encodePublishV5, now, openMany } from '../client.mjs';
import { checkReply, connectedSetup, lastLevel, topics } from '../topics.mjs';
import { cpuOf } from '../../lib/cpu.mjs';

/**
 * Closed loop: `conns` connections × `inflight` requests outstanding each. With style `v5`
 * the clients speak MQTT 5 and ask with Response Topic + Correlation Data (a 4-byte counter).
 * `cpuPids`: server-side pids whose CPU seconds are read at the start and the end of the
 * measured window (`windowCpu`, one entry per pid, null where unreadable), so CPU per reply is
 * the window's CPU over the window's replies; the load process's own CPU over it is `loadCpu`.
 */
export async function rr({ target, conns, inflight, qos, payloadSize, warmupMs, measureMs, style = 'gate', cpuPids = [] }) {
  const v5 = style === 'v5';
  const payload = makePayload(payloadSize);
  const expected = JSON.stringify(JSON.parse(payload.toString()));
  const hist = newHistogram();
  const stats = { bad: 0, badSample: undefined };
  let phase = 'warmup';
  let counted = 0;
  let lateClose = 0;
  const { clients, failed, errorSample } = await openMany(target, conns, {
    setup: connectedSetup(style),
    opts: () => ({ protocolVersion: v5 ? 5 : 4 }),
  });
  if (clients.length === 0) throw new Error(`no connection: ${errorSample.join('; ')}`);
  let outstanding = 0;
  let drained;
  for (const c of clients) {
    const t = topics(style, c.clientId);
    const pending = new Map();
    let seq = 0;
    let mid = 0;
    let checks = 2;
    const sendOne = () => {
      const n = ++seq;
      mid = (mid % 65535) + 1;
      pending.set(v5 ? n : String(n), now());
      outstanding++;
      if (v5) {
        const cd = Buffer.allocUnsafe(4);
        cd.writeUInt32BE(n >>> 0, 0);
        c.send(encodePublishV5(t.request('echo'), payload, qos, mid, t.responseTopic, cd));
      } else c.send(encodePublish(t.request('echo', n), payload, qos, mid));
    };
    c.onPacket = (p) => {
      if (p.cmd !== 'publish') return;
      const key = v5 ? p.properties?.correlationData?.readUInt32BE(0) : lastLevel(p.topic);
      const t0 = pending.get(key);
      if (t0 === undefined) return;
      pending.delete(key);
      outstanding--;
      if (checks > 0) {
        checks--;
        checkReply(p, expected, stats);
      }
      if (phase === 'measure') {
        hist.recordValue(Math.max(1, Math.round((now() - t0) * 1000)));
        counted++;
      }
      if (phase !== 'drain') sendOne();
      else if (outstanding === 0) drained?.();
    };
    c.onClose = () => {
      if (phase !== 'done') lateClose++;
    };
    for (let i = 0; i < inflight; i++) sendOne();
  }
  await sleep(warmupMs);
  phase = 'measure';
  const cpu0 = cpuOf(cpuPids);
  const own0 = process.cpuUsage();
  const t0 = now();
  await sleep(measureMs);
  const elapsed = (now() - t0) / 1000;
  const cpu1 = cpuOf(cpuPids);
  const own = process.cpuUsage(own0);
  phase = 'drain';
  const c0 = counted;
  if (outstanding > 0) await Promise.race([new Promise((r) => (drained = r)), sleep(3000)]);
  phase = 'done';
  for (const c of clients) c.end();
  await sleep(50);
  return {
    replies: c0,
    seconds: elapsed,
    rate: c0 / elapsed,
    hist: encodeHistogram(hist),
    connections: clients.length,
    failedConnections: failed,
    errorSample,
    lost: outstanding,
    badReplies: stats.bad,
    badSample: stats.badSample,
    closedDuringRun: lateClose,
    windowCpu: cpu1.map((c, i) => (c === null || cpu0[i] === null ? null : c - cpu0[i])),
    loadCpu: (own.user + own.system) / 1e6,
  };
}
