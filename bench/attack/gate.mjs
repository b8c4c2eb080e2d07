// The gate under attack (a child of the bench/attack scripts): a Gate with the demo's default
// limits (only what `ATTACK_GATE`, a JSON object of gate options, overrides) and an in-process
// `echo` module (HD_echo answers its payload), on loopback ports chosen by the OS. It answers
// the parent over IPC: `{cmd:'stats'}` → gate.stats(), process.memoryUsage(), the event-loop
// stalls it saw (its own 10 ms drift watch: count over 100 ms, those of them with this process on
// CPU for over half the stall, the most CPU ms in one, the longest, each with its CPU ms; those
// over 50 ms as monotonic-clock windows; and the gate's own `event-loop-stall` warn lines); `{cmd:'broadcast', qos, bytes}` → a broadcast;
// `{cmd:'sendEach', qos, bytes}` → gate.send to every connected session; `{cmd:'gc'}`
// runs a full GC when node was started with --expose-gc; `{cmd:'stop'}` stops and exits.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const { Gate } = require('../../packages/gate/dist/index.js');
const { InProcessTransport, MemoryUserIndex, gateClient } = require('../../packages/rpc/dist/index.js');

const overrides = JSON.parse(process.env.ATTACK_GATE || '{}');
const stalls = { over100: 0, over100Busy: 0, busiest: 0, longest: 0, warned: 0, warnedLongest: 0, at: [], windows: [] };
let since = performance.now();
const noop = () => undefined;
const logger = {
  trace: noop,
  debug: noop,
  info: noop,
  error: noop,
  fatal: noop,
  warn: (fields) => {
    if (fields?.kind === 'event-loop-stall') {
      stalls.warned++;
      stalls.warnedLongest = Math.max(stalls.warnedLongest, fields.stalledMs);
    }
  },
  child() {
    return logger;
  },
};

// A stall's CPU: what this process used meanwhile (all its threads, so GC helpers too). A stall
// on a shared machine is often the OS running something else: little CPU of ours in it.
// Each stall over 50 ms is kept as a window of the monotonic clock in µs (the clock of a
// .cpuprofile's sample times), so that stall-profile.mjs can say what ran in it.
let last = performance.now();
let lastCpu = cpuMs();
let lastUs = monotonicUs();
setInterval(() => {
  const now = performance.now();
  const cpu = cpuMs();
  const us = monotonicUs();
  const late = now - last - 10;
  const used = cpu - lastCpu;
  if (late > 50 && stalls.windows.length < 100) stalls.windows.push({ fromUs: lastUs, toUs: us, at: (now - since) / 1000, late, cpu: used });
  last = now;
  lastCpu = cpu;
  lastUs = us;
  if (late > 100) {
    stalls.over100++;
    if (used > late / 2) stalls.over100Busy++;
    stalls.busiest = Math.max(stalls.busiest, Math.round(used));
    if (stalls.at.length < 20) stalls.at.push(`${Math.round((now - since) / 100) / 10}s:${Math.round(late)}ms(cpu ${Math.round(used)})`);
  }
  stalls.longest = Math.max(stalls.longest, late);
}, 10).unref();

function monotonicUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const transport = new InProcessTransport();
const index = new MemoryUserIndex();
const gate = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: { port: 0, host: '127.0.0.1' }, userIndex: index, ...overrides });
await transport.serve({ serverId: 'echo@1', moduleType: 'echo' }, async (fn, args) => (fn === 'HD_echo' ? args[1] : null));
await transport.serve({ serverId: 'user@1', moduleType: 'user' }, async (_fn, args) => {
  const bound = await gateClient(transport, args[0].serverId).bind(args[0].sessionId, String(args[1].userId));
  return { sessionId: bound.sessionId };
});
await gate.start({ transport, logger, userIndex: index });
const sessionIds = new Set();
gate.on('connect', (s) => sessionIds.add(s.sessionId));
gate.on('disconnect', (s) => sessionIds.delete(s.sessionId));
const a = gate.addresses();
process.send({ ready: true, tcpPort: a.tcp.port, wsPort: a.websocket.port });

process.on('message', async (m) => {
  if (m.cmd === 'stats') {
    const mem = process.memoryUsage();
    process.send({ stats: gate.stats(), counts: gate.counts(), mem, stalls: { ...stalls } });
  } else if (m.cmd === 'broadcast') {
    const n = gate.broadcast(m.topic ?? 'attack/push', Buffer.alloc(m.bytes, 0x61), undefined, m.qos ?? 0);
    process.send({ delivered: n });
  } else if (m.cmd === 'sendEach') {
    // One push per connected session (each its own copy of the body, as session.send makes).
    const body = Buffer.alloc(m.bytes, 0x61);
    let n = 0;
    for (const id of sessionIds) if (gate.send(id, m.topic ?? 'attack/push', body, undefined, m.qos ?? 0)) n++;
    process.send({ delivered: n });
  } else if (m.cmd === 'gc') {
    globalThis.gc?.();
    process.send({ gc: typeof globalThis.gc === 'function' });
  } else if (m.cmd === 'reset') {
    stalls.over100 = 0;
    stalls.over100Busy = 0;
    stalls.busiest = 0;
    stalls.longest = 0;
    stalls.at = [];
    stalls.windows = [];
    since = performance.now();
    process.send({ reset: true });
  } else if (m.cmd === 'stop') {
    await gate.stop();
    await transport.close();
    process.exit(0);
  }
});
