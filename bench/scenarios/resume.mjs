// @ts-check
// Resume after a dropped connection: how long a resume takes (on the same gate, and
// on another gate process over the Redis transport + Redis user index), what a detached
// session costs in gate memory (empty and full replay buffer), and what the detached sessions'
// buffers cost a push fan-out (10 % detached vs none).
//
// Needs: rig; the across-gates scenario also redis (skipped without one).
import { fmt, sleep, summarize } from '../lib/common.mjs';
import { FD_CAP } from '../lib/proc.mjs';
import { NO_REDIS } from '../lib/redis.mjs';
import { serverCpu } from '../lib/rig.mjs';

/**
 * Every gate option these scenarios set, in one place (merged into each mqgate server's
 * options). The load process opens thousands of connections from 127.0.0.2-201 in bursts: once
 * per-IP connection caps and connect rates are on by default, turn them off here.
 */
const GATE_OPTIONS = {};
/** The resume buffer's default bounds (packages/gate/src/options.ts DEFAULTS): what "full" fills. */
const BUFFER_MESSAGES = 50;
const BUFFER_BYTES = 65_536;
/** The topic of the mqgate bench server's pushes. */
const PUSH_TOPIC = 'bench/push';
/** Bytes a buffered push is charged besides its body (replay-buffer.ts): topic + 64. */
const charge = (body) => body + PUSH_TOPIC.length + 64;
/** The body size that fills both bounds at once: BUFFER_MESSAGES pushes of it come to just under BUFFER_BYTES. */
const FULL_BODY = Math.floor(BUFFER_BYTES / BUFFER_MESSAGES) - PUSH_TOPIC.length - 64;

/** Polls the gate's counts until `check(counts)` holds (or throws after `ms`). */
async function untilCounts(srv, check, what, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const { counts } = await srv.node.request('stats');
    if (check(counts)) return counts;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: counts ${JSON.stringify(counts)}`);
    await sleep(50);
  }
}

const userPrefix = (label) => `${label}-${Date.now() % 1_000_000}-`;

/** Logs `users` sessions in on `srv`, drops them all, waits until `srv` holds them detached; then resumes them on `targets` in turn. */
async function dropAndResume({ rig, srv, targets, users, concurrency, label }) {
  const l = await rig.load();
  try {
    const opened = await l.request('resumeOpen', { target: { transport: 'tcp', port: srv.tcp }, users, userPrefix: userPrefix(label) }, 180000);
    if (opened.open === 0) throw new Error(`no session bound: ${opened.errorSample.join('; ')}`);
    await l.request('resumeDrop', {});
    await untilCounts(srv, (c) => c.detached === opened.open, `${opened.open} detached sessions`);
    await sleep(200); // the user-index moves (bound → detached key) finish after the close
    const r = await l.request('resumeRun', { targets: targets.map((port) => ({ transport: 'tcp', port })), concurrency }, 180000);
    return { sessions: opened.open, loginSeconds: opened.seconds, ...r, latency: r.hists.map((h) => summarize([h])) };
  } finally {
    await l.request('resumeClose', {}).catch(() => undefined);
  }
}

const latencyLine = (label, x) => `${label} p50 ${x.p50} ms p99 ${x.p99} ms`;

export function resumeLatencySameGate(scale) {
  const S = scale.resume;
  return {
    name: 'resume latency, same gate (tcp, in-process transport)',
    needs: ['rig'],
    async run({ rig }) {
      const srv = await rig.startNodeServer('mqgate', { ws: false, gate: GATE_OPTIONS });
      try {
        const r = await dropAndResume({ rig, srv, targets: [srv.tcp], users: S.users, concurrency: S.concurrency, label: 'rs' });
        const after = await untilCounts(srv, () => true, 'counts');
        return {
          data: { ...r, concurrency: S.concurrency, latency: r.latency[0], resumed: r.ok[0], after },
          summary: `${latencyLine('', r.latency[0]).trim()} (${r.ok[0]}/${r.attempted} resumed, ${S.concurrency} at a time)`,
        };
      } finally {
        await srv.stop();
      }
    },
  };
}

export function resumeLatencyAcrossGates(scale) {
  const S = scale.resume;
  return {
    name: 'resume latency across gates (2 gate processes + modules over Redis, Redis user index)',
    needs: ['rig', 'redis'],
    async run({ rig, redis }) {
      const r0 = await redis.ensure();
      if (!r0) return { skipped: NO_REDIS };
      const shared = { transport: 'redis', transportRedis: r0.url, userIndexRedis: r0.url, userIndexPrefix: `bench:resume:${Date.now()}:` };
      const mod = await rig.startNodeServer('mqgate', { ...shared, role: 'module', tcp: false, ws: false });
      const a = await rig.startNodeServer('mqgate', { ...shared, role: 'gate', ws: false, gate: GATE_OPTIONS });
      const b = await rig.startNodeServer('mqgate', { ...shared, role: 'gate', ws: false, gate: GATE_OPTIONS });
      try {
        await sleep(500); // the registry: every gate sees the others live
        // Logged in on A; even sessions resume on A (same gate), odd ones on B (handOver from A over Redis).
        const r = await dropAndResume({ rig, srv: a, targets: [a.tcp, b.tcp], users: S.users, concurrency: S.concurrency, label: 'rx' });
        const [same, other] = r.latency;
        return {
          data: { ...r, concurrency: S.concurrency, sameGate: same, otherGate: other, resumedSame: r.ok[0], resumedOther: r.ok[1] },
          summary: `${latencyLine('same gate', same)}, ${latencyLine('other gate', other)} (${r.ok[0] + r.ok[1]}/${r.attempted} resumed${r.failed ? `, ${r.failed} failed: ${r.errorSample[0]}` : ''})`,
        };
      } finally {
        await a.stop();
        await b.stop();
        await mod.stop();
      }
    },
  };
}

export function resumeMemory(scale) {
  const S = scale.resume;
  return {
    name: 'resume memory per detached session (empty and full buffer)',
    needs: ['rig'],
    async run({ rig }) {
      const srv = await rig.startNodeServer('mqgate', { ws: false, gate: GATE_OPTIONS });
      const l = await rig.load();
      const n = Math.min(S.memorySessions, FD_CAP);
      const target = { transport: 'tcp', port: srv.tcp };
      try {
        // Warm-up: as many connections opened and closed first, so the allocator's high-water mark is no part of the deltas.
        await l.request('idleOpen', { target, count: n }, 180000);
        await l.request('idleClose', {});
        await untilCounts(srv, (c) => c.total === 0, 'the warm-up connections closed');
        await sleep(300);
        const base = await srv.node.request('mem');
        const opened = await l.request('resumeOpen', { target, users: n, userPrefix: userPrefix('rm') }, 180000);
        await sleep(300);
        const bound = await srv.node.request('mem');
        await l.request('resumeDrop', {});
        await untilCounts(srv, (c) => c.detached === opened.open, `${opened.open} detached`);
        await sleep(300);
        const empty = await srv.node.request('mem');
        const fill = await srv.node.request('fill', { sessionIds: opened.sessionIds, count: BUFFER_MESSAGES, size: FULL_BODY }, 180000);
        await sleep(300);
        const full = await srv.node.request('mem');
        const per = (m) => ({
          rss: (m.rss - base.rss) / opened.open,
          heap: (m.heapUsed - base.heapUsed) / opened.open,
          external: (m.external - base.external) / opened.open,
        });
        const rows = { boundConnected: per(bound), detachedEmpty: per(empty), detachedFull: per(full) };
        return {
          data: {
            sessions: opened.open,
            pushesTaken: fill.taken,
            bufferMessages: BUFFER_MESSAGES,
            bufferBytes: BUFFER_BYTES,
            pushBody: FULL_BODY,
            charged: BUFFER_MESSAGES * charge(FULL_BODY),
            base,
            ...rows,
          },
          summary:
            `${opened.open.toLocaleString('en-US')} sessions: bound+connected ${fmt(rows.boundConnected.rss / 1024)} KiB RSS, ` +
            `detached empty ${fmt(rows.detachedEmpty.rss / 1024)} KiB RSS / ${fmt(rows.detachedEmpty.heap / 1024)} KiB heap, ` +
            `detached full (${BUFFER_MESSAGES} × ${FULL_BODY} B) ${fmt(rows.detachedFull.rss / 1024)} KiB RSS / ${fmt((rows.detachedFull.heap + rows.detachedFull.external) / 1024)} KiB heap+external each`,
        };
      } finally {
        await l.request('resumeClose', {}).catch(() => undefined);
        await l.request('idleClose', {}).catch(() => undefined);
        await srv.stop();
      }
    },
  };
}

export function resumeFanout(scale) {
  const S = scale.resume;
  const count = Math.min(S.fanoutSessions, FD_CAP);
  return {
    name: `resume buffer cost: push fan-out to ${count.toLocaleString('en-US')} sessions, ${S.detachedShare * 100} % detached vs none`,
    needs: ['rig'],
    async run({ rig }) {
      const out = [];
      for (const share of [0, S.detachedShare]) {
        const srv = await rig.startNodeServer('mqgate', { ws: false, gate: GATE_OPTIONS });
        const l = await rig.load();
        try {
          const target = { transport: 'tcp', port: srv.tcp };
          const opened = await l.request('resumeOpen', { target, users: count, userPrefix: userPrefix('rf') }, 180000);
          const { dropped } = await l.request('resumeDrop', { share });
          await untilCounts(srv, (c) => c.detached === dropped && c.bound === opened.open - dropped, `${dropped} detached`);
          await sleep(300);
          const cpu0 = serverCpu(srv);
          const f = await l.request('resumeFanout', { target, rounds: S.fanoutRounds }, 180000);
          const cpuMs = (serverCpu(srv) - cpu0) * 1000;
          const done = f.rounds.filter((x) => !x.timedOut);
          const last = done.map((x) => x.lastMs).sort((x, y) => x - y);
          out.push({
            detachedShare: share,
            sessions: opened.open,
            detached: dropped,
            live: f.live,
            lastMs: last.length ? last[last.length >> 1] : null,
            gateCpuMsPerFanout: done.length ? cpuMs / f.rounds.length : null,
            rounds: f.rounds,
          });
        } finally {
          await l.request('resumeClose', {}).catch(() => undefined);
          await srv.stop();
        }
      }
      return {
        data: out,
        summary: out
          .map((o) => `${o.detached} detached: last live push after ${fmt(o.lastMs)} ms, gate CPU ${fmt(o.gateCpuMsPerFanout)} ms per fan-out`)
          .join('; '),
      };
    },
  };
}

export function resumeScenarios(scale) {
  return [resumeLatencySameGate(scale), resumeLatencyAcrossGates(scale), resumeMemory(scale), resumeFanout(scale)];
}
