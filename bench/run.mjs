#!/usr/bin/env node
// mqgate benchmark runner. `npm run bench` (default, < 10 min), `-- --quick` (< 2 min),
// `-- --smoke` (every scenario ~1 s, tiny counts; used by the jest smoke test).
// Every server and the load generator run in their own child process on loopback; every
// child is stopped at the end, on failure and on SIGINT/SIGTERM.
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import {
  NodeChild,
  spawnChild,
  stopProcess,
  killAll,
  liveChildren,
  started,
  cpuSeconds,
  freePort,
  FD_HARD_LIMIT,
  PINNING,
  CPU_COUNT,
  machineBusySeconds,
  ourCpuSeconds,
} from './lib/proc.mjs';
import { median, summarize, sleep } from './lib/common.mjs';
import { analyzeProfile } from './lib/profile.mjs';
import { renderMarkdown, evaluateTargets, writeMarkdown } from './lib/report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const require = createRequire(join(root, 'package.json'));

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    out: { type: 'string' },
    md: { type: 'string' },
    only: { type: 'string' },
    pin: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(`usage: node bench/run.mjs [--quick | --smoke] [--out DIR] [--md FILE] [--only a,b]
  default   full suite (< 10 min); writes bench-results/<timestamp>.json and BENCHMARKS.md
  --quick   scaled down (< 2 min); writes JSON and bench-results/<timestamp>.md
  --smoke   every scenario for ~1 s with tiny counts (the jest smoke test)
  --out     directory for results (default bench-results/)
  --md      markdown file to write (default: BENCHMARKS.md for the full run only)
  --only    comma-separated scenario name prefixes
  --pin     pin servers to the last CPU and the load process to the first (taskset); off by default:
            on this 2-vCPU VM pinning made every server 5-15x slower and noisier`);
  process.exit(0);
}
const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'default';

/** Every count and duration, per mode. */
const SCALE = {
  default: {
    scenarioLimitMs: 60_000,
    quiet: { perScenarioMs: 10_000, totalMs: 60_000 },
    rr: { warmupMs: 250, measureMs: 800, trials: 3, configs: [[1, 1], [100, 10]] },
    open: { conns: 100, warmupMs: 1000, measureMs: 5000 },
    connrate: { concurrency: 16, warmupMs: 500, measureMs: 3000 },
    fanout: { count: 10_000, rounds: 5 },
    profile: { warmupMs: 500, measureMs: 5000 },
    idle: { counts: [10_000, 50_000] },
    redis: { users: 1000, settings: 3, heartbeatMs: 2000, windowMs: 8000, restoreUsers: 500 },
  },
  quick: {
    scenarioLimitMs: 60_000,
    quiet: { perScenarioMs: 2000, totalMs: 5_000 },
    rr: { warmupMs: 150, measureMs: 300, trials: 1, configs: [[1, 1], [100, 10]] },
    open: { conns: 50, warmupMs: 300, measureMs: 1000 },
    connrate: { concurrency: 16, warmupMs: 200, measureMs: 1000 },
    fanout: { count: 1000, rounds: 2 },
    profile: { warmupMs: 300, measureMs: 1500 },
    idle: { counts: [1000, 5000] },
    redis: { users: 100, settings: 3, heartbeatMs: 500, windowMs: 1000, restoreUsers: 100 },
  },
  smoke: {
    scenarioLimitMs: 60_000,
    quiet: { perScenarioMs: 0, totalMs: 0 },
    rr: { warmupMs: 50, measureMs: 150, trials: 1, configs: [[1, 1], [4, 2]] },
    open: { conns: 4, warmupMs: 100, measureMs: 400 },
    connrate: { concurrency: 4, warmupMs: 100, measureMs: 300 },
    fanout: { count: 50, rounds: 2 },
    profile: { warmupMs: 100, measureMs: 500 },
    idle: { counts: [20, 50] },
    redis: { users: 10, settings: 2, heartbeatMs: 300, windowMs: 900, restoreUsers: 10 },
  },
}[mode];

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const outDir = resolve(args.out ?? join(root, 'bench-results'));
mkdirSync(outDir, { recursive: true });
const mdPath = args.md ? resolve(args.md) : mode === 'default' ? join(root, 'BENCHMARKS.md') : join(outDir, `${stamp}.md`);
const onlyList = args.only ? args.only.split(',').map((s) => s.trim()) : null;

const SERVERS = ['mqgate', 'aedes', 'bare', 'mosquitto'];
const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p));
const REDIS_SERVER = (() => {
  try {
    return execFileSync('bash', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
})();
const FD_CAP = FD_HARD_LIMIT - 256;

const results = {
  mode,
  startedAt: new Date().toISOString(),
  command: `npm run bench${mode === 'default' ? '' : ` -- --${mode}`}`,
  machine: {
    node: process.version,
    cpus: CPU_COUNT,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    platform: `${process.platform} ${process.arch}`,
    fdHardLimit: FD_HARD_LIMIT,
    pinning: args.pin ? PINNING : null,
  },
  scale: SCALE,
  scenarios: {},
  children: started,
};

// ---- process hygiene ----------------------------------------------------------------------
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: stopping ${liveChildren().length} child process(es) and exiting`);
    killAll();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}
process.on('exit', () => killAll());
process.on('uncaughtException', (err) => {
  console.error('bench runner failed:', err);
  killAll();
  process.exit(1);
});
process.on('unhandledRejection', (err) => {
  console.error('bench runner failed (unhandled rejection):', err);
  killAll();
  process.exit(1);
});

// ---- children -------------------------------------------------------------------------------
const srvCpu = args.pin ? PINNING?.server : undefined;
const loadCpu = args.pin ? PINNING?.load : undefined;

async function startNodeServer(kind, config = {}, nodeArgs = []) {
  const s = new NodeChild(kind, join(here, 'servers', `${kind}.mjs`), { config, nodeArgs, cpu: srvCpu });
  await s.ready;
  return { kind, tcp: s.info.tcp, ws: s.info.ws, pids: [s.pid], stop: () => s.stop(), node: s };
}

async function waitPort(port, ms = 10000) {
  const net = await import('node:net');
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((r) => {
      const c = net.connect(port, '127.0.0.1');
      c.on('connect', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${port} after ${ms} ms`);
    await sleep(50);
  }
}

/** Our own mosquitto on a free port (generated config) + the responder client. */
async function startMosquitto() {
  const port = await freePort();
  const dir = join(tmpdir(), `mqgate-bench-mosquitto-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'set_tcp_nodelay true', 'max_queued_messages 100000', ''].join('\n'),
  );
  const broker = spawnChild('mosquitto', [MOSQUITTO, '-c', conf], { ipc: false, cpu: srvCpu });
  broker.exited.then(({ code, signal }) => {
    if (!stoppingMosquitto) console.error(`  mosquitto exited (${signal ?? code})`);
  });
  let stoppingMosquitto = false;
  await waitPort(port);
  const responder = new NodeChild('responder', join(here, 'servers', 'responder.mjs'), { config: { brokerPort: port }, cpu: srvCpu });
  await responder.ready;
  return {
    kind: 'mosquitto',
    tcp: port,
    ws: undefined,
    pids: [broker.pid, responder.pid],
    stop: async () => {
      stoppingMosquitto = true;
      await responder.stop();
      await stopProcess(broker, 3000, 'SIGTERM');
    },
  };
}

function startServer(kind, config) {
  return kind === 'mosquitto' ? startMosquitto() : startNodeServer(kind, config);
}

let load;
async function loadGen() {
  if (!load || load.child.exitCode !== null || load.child.signalCode !== null) {
    load = new NodeChild('load', join(here, 'load', 'load.mjs'), { cpu: loadCpu });
    await load.ready;
  }
  return load;
}

/** Server-side CPU seconds (every pid of the server). */
const serverCpu = (srv) => srv.pids.reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0);

// ---- other processes on the machine ---------------------------------------------------------
/** CPU (in cores) used by processes that are not ours over the last `ms`. */
async function foreignCores(ms = 1000) {
  const b0 = machineBusySeconds();
  const o0 = ourCpuSeconds();
  await sleep(ms);
  const b1 = machineBusySeconds();
  const o1 = ourCpuSeconds();
  if (b0 === null || b1 === null) return null;
  return Math.max(0, b1 - b0 - (o1 - o0)) / (ms / 1000);
}
let quietBudget = SCALE.quiet.totalMs;
/** Waits (within the run's budget) until other processes use < 0.2 cores; returns what it saw. */
async function waitQuiet() {
  if (SCALE.quiet.perScenarioMs <= 0) return null;
  const t0 = Date.now();
  let seen = await foreignCores(500);
  while (seen !== null && seen >= 0.2 && quietBudget > 0 && Date.now() - t0 < SCALE.quiet.perScenarioMs) {
    seen = await foreignCores(1000);
    quietBudget -= 1000;
  }
  return { foreignCores: seen === null ? null : Math.round(seen * 100) / 100, waitedMs: Date.now() - t0 };
}

// ---- scenario framework -------------------------------------------------------------------
const plan = [];
let scenarioIndex = 0;
function scenario(name, fn) {
  plan.push({ name, fn });
}

async function runPlan() {
  const selected = plan.filter((s) => !onlyList || onlyList.some((o) => s.name.startsWith(o)));
  for (const s of selected) {
    scenarioIndex++;
    const t0 = Date.now();
    const deadline = t0 + SCALE.scenarioLimitMs;
    process.stdout.write(`[${scenarioIndex}/${selected.length}] ${s.name} ... `);
    const entry = { status: 'ok', startedAt: new Date().toISOString() };
    results.scenarios[s.name] = entry;
    const quiet = await waitQuiet();
    if (quiet) entry.before = quiet;
    const busy0 = machineBusySeconds();
    const ours0 = ourCpuSeconds();
    try {
      const out = await s.fn({ deadline });
      if (out && out.skipped) {
        entry.status = 'skipped';
        entry.note = out.skipped;
      } else {
        entry.data = out?.data ?? out;
        if (out?.summary) entry.summary = out.summary;
        if (out?.truncated) entry.note = `truncated: reached the ${SCALE.scenarioLimitMs / 1000} s scenario limit`;
      }
    } catch (err) {
      entry.status = 'failed';
      entry.error = err instanceof Error ? err.message : String(err);
    }
    entry.seconds = Math.round((Date.now() - t0) / 100) / 10;
    const busy1 = machineBusySeconds();
    if (busy0 !== null && busy1 !== null) {
      // CPU of processes not started by this run while the scenario ran (other users of the machine).
      entry.foreignCores = Math.round((Math.max(0, busy1 - busy0 - (ourCpuSeconds() - ours0)) / Math.max(0.1, (Date.now() - t0) / 1000)) * 100) / 100;
    }
    const line =
      entry.status === 'ok'
        ? `ok (${entry.seconds} s${entry.foreignCores >= 0.1 ? `, other processes used ${entry.foreignCores} cores meanwhile` : ''})${entry.summary ? `: ${entry.summary}` : ''}${entry.note ? ` [${entry.note}]` : ''}`
        : entry.status === 'skipped'
          ? `skipped: ${entry.note}`
          : `FAILED (${entry.seconds} s): ${entry.error}`;
    console.log(line);
  }
}

const fmt = (n) => (n === null || n === undefined ? '-' : n >= 100 ? Math.round(n).toLocaleString('en-US') : String(Math.round(n * 100) / 100));

// ---- request/reply (closed loop) ------------------------------------------------------------
const rrServers = {};
const rrCells = []; // {transport, conns, inflight, qos, payload, server, trials:[...]} for the report

function rrKey(c) {
  return `${c.transport} ${c.conns}x${c.inflight} qos${c.qos} ${c.payload}B`;
}

scenario('setup: start servers (mqgate, aedes, bare, mosquitto)', async () => {
  await loadGen();
  const kinds = SERVERS.filter((k) => k !== 'mosquitto' || MOSQUITTO);
  for (const k of kinds) rrServers[k] = await startServer(k);
  const notes = MOSQUITTO ? '' : ' (no mosquitto binary: mosquitto rows skipped)';
  return { data: { servers: Object.fromEntries(Object.entries(rrServers).map(([k, s]) => [k, { pids: s.pids, tcp: s.tcp, ws: s.ws }])) }, summary: `${Object.keys(rrServers).join(', ')} ready${notes}` };
});

async function runRrCell(srv, cell) {
  const l = await loadGen();
  const port = cell.transport === 'ws' ? srv.ws : srv.tcp;
  const cpu0 = serverCpu(srv);
  const lcpu0 = cpuSeconds(l.pid);
  const r = await l.request('rr', {
    target: { transport: cell.transport, port },
    conns: cell.conns,
    inflight: cell.inflight,
    qos: cell.qos,
    payloadSize: cell.payload,
    warmupMs: SCALE.rr.warmupMs,
    measureMs: SCALE.rr.measureMs,
    style: srv.kind === 'mosquitto' ? 'mosquitto' : 'gate',
  });
  const cpu = serverCpu(srv) - cpu0;
  const lcpu = (cpuSeconds(l.pid) ?? 0) - (lcpu0 ?? 0);
  // CPU is sampled over the whole trial (connect + warm-up + measure + drain), so it is
  // normalised by the trial's wall time, not only the measured second.
  const wall = (SCALE.rr.warmupMs + SCALE.rr.measureMs) / 1000;
  return { ...r, serverCpuShare: cpu / wall, loadCpuShare: lcpu / wall };
}

for (const transport of ['tcp', 'ws']) {
  for (const payload of [64, 4096]) {
    for (const [conns, inflight] of SCALE.rr.configs) {
      const name = `request-reply ${transport} ${conns}x${inflight} ${payload === 64 ? '64B' : '4KiB'}`;
      scenario(name, async ({ deadline }) => {
        const kinds = Object.keys(rrServers).filter((k) => transport === 'tcp' || k !== 'mosquitto');
        if (kinds.length === 0) throw new Error('no server running (setup failed)');
        const cells = [];
        for (const qos of [0, 1]) for (const server of kinds) cells.push({ transport, conns, inflight, qos, payload, server, trials: [] });
        let truncated = false;
        // Trials interleaved across servers so drift on the machine hits all of them alike.
        for (let t = 0; t < SCALE.rr.trials; t++) {
          for (const cell of cells) {
            if (Date.now() > deadline - (SCALE.rr.warmupMs + SCALE.rr.measureMs + 1500) && cell.trials.length > 0) {
              truncated = true;
              continue;
            }
            cell.trials.push(await runRrCell(rrServers[cell.server], cell));
          }
        }
        const out = cells.map((c) => {
          const rate = median(c.trials.map((x) => x.rate));
          const lat = summarize(c.trials.map((x) => x.hist));
          return {
            key: rrKey(c),
            server: c.server,
            transport,
            conns,
            inflight,
            qos: c.qos,
            payload,
            rate,
            rates: c.trials.map((x) => Math.round(x.rate)),
            latency: lat,
            serverCpuShare: median(c.trials.map((x) => x.serverCpuShare)),
            loadCpuShare: median(c.trials.map((x) => x.loadCpuShare)),
            lost: c.trials.reduce((a, x) => a + x.lost, 0),
            badReplies: c.trials.reduce((a, x) => a + x.badReplies, 0),
            badSample: c.trials.find((x) => x.badSample)?.badSample,
            failedConnections: c.trials.reduce((a, x) => a + x.failedConnections, 0),
          };
        });
        rrCells.push(...out);
        const bad = out.filter((c) => c.badReplies > 0 || c.failedConnections > 0 || !(c.rate > 0));
        if (bad.length) throw new Error(`bad replies or failed connections: ${bad.map((c) => `${c.server} ${c.key} (${c.badSample ?? c.failedConnections})`).join('; ')}`);
        const q0 = out.filter((c) => c.qos === 0);
        return { data: out, truncated, summary: q0.map((c) => `${c.server} ${fmt(c.rate)}/s`).join(', ') + ' (QoS 0)' };
      });
    }
  }
}

// ---- open loop at 50 % of each server's peak ----------------------------------------------------
const [BIG_CONNS, BIG_INFLIGHT] = SCALE.rr.configs[1];
function peakOf(server) {
  const c = rrCells.find((x) => x.server === server && x.transport === 'tcp' && x.conns === BIG_CONNS && x.qos === 0 && x.payload === 64);
  return c?.rate ?? null;
}
scenario('open-loop latency at 50% of peak (tcp, QoS 0, 64B)', async ({ deadline }) => {
  const out = [];
  for (const [kind, srv] of Object.entries(rrServers)) {
    if (Date.now() > deadline - SCALE.open.warmupMs - SCALE.open.measureMs - 2000) break;
    const peak = peakOf(kind);
    if (!peak) continue;
    const rate = Math.round(peak * 0.5);
    const l = await loadGen();
    const cpu0 = serverCpu(srv);
    const r = await l.request('open', {
      target: { transport: 'tcp', port: srv.tcp },
      conns: SCALE.open.conns,
      rate,
      qos: 0,
      payloadSize: 64,
      warmupMs: SCALE.open.warmupMs,
      measureMs: SCALE.open.measureMs,
      style: kind === 'mosquitto' ? 'mosquitto' : 'gate',
    });
    const cpu = (serverCpu(srv) - cpu0) / ((SCALE.open.warmupMs + SCALE.open.measureMs) / 1000);
    out.push({ server: kind, peak, rateAsked: rate, rate: r.rate, lost: r.lost, latency: summarize([r.hist]), maxScheduleLagMs: r.maxScheduleLagMs, serverCpuShare: cpu, conns: r.connections });
  }
  if (out.length === 0) throw new Error('no peak measured (request-reply tcp 64B did not run)');
  return { data: out, summary: out.map((o) => `${o.server} p99 ${o.latency.p99} ms @ ${fmt(o.rateAsked)}/s`).join(', ') };
});

// ---- connection rate ----------------------------------------------------------------------------
async function connRate(srv) {
  const l = await loadGen();
  const r = await l.request('connrate', {
    target: { transport: 'tcp', port: srv.tcp },
    concurrency: SCALE.connrate.concurrency,
    warmupMs: SCALE.connrate.warmupMs,
    measureMs: SCALE.connrate.measureMs,
  });
  return { rate: r.rate, connacks: r.connacks, failed: r.failed, errorSample: r.errorSample, latency: summarize([r.hist]) };
}
scenario('connection rate (tcp, CONNECT→CONNACK)', async () => {
  const out = [];
  for (const [kind, srv] of Object.entries(rrServers)) out.push({ server: kind, ...(await connRate(srv)) });
  return { data: out, summary: out.map((o) => `${o.server} ${fmt(o.rate)}/s`).join(', ') };
});

// ---- push fan-out ---------------------------------------------------------------------------------
scenario(`push fan-out to ${SCALE.fanout.count.toLocaleString('en-US')} sessions (tcp)`, async ({ deadline }) => {
  const out = [];
  const count = Math.min(SCALE.fanout.count, FD_CAP);
  for (const [kind, srv] of Object.entries(rrServers)) {
    if (Date.now() > deadline - 8000 && out.length > 0) break;
    const l = await loadGen();
    const r = await l.request('fanout', { target: { transport: 'tcp', port: srv.tcp }, count, rounds: SCALE.fanout.rounds, style: kind === 'mosquitto' ? 'mosquitto' : 'gate' });
    const complete = r.rounds.filter((x) => !x.timedOut);
    out.push({
      server: kind,
      sessions: r.sessions,
      failedConnections: r.failedConnections,
      lastMs: median(complete.map((x) => x.lastMs)),
      p50Ms: median(complete.map((x) => x.p50Ms)),
      rounds: r.rounds,
      incomplete: r.rounds.length - complete.length,
    });
  }
  return { data: out, summary: out.map((o) => `${o.server} last after ${o.lastMs} ms`).join(', ') };
});

scenario('teardown: stop servers', async () => {
  const n = Object.keys(rrServers).length;
  for (const [k, s] of Object.entries(rrServers)) {
    await s.stop();
    delete rrServers[k];
  }
  return { data: { stopped: n }, summary: `${n} stopped` };
});

// ---- CPU profile of the gate under load -----------------------------------------------------------
const profileDir = join(outDir, `${stamp}-prof`);
for (const transport of ['tcp', 'ws']) {
  scenario(`profile: mqgate --cpu-prof, ${transport} ${BIG_CONNS}x${BIG_INFLIGHT} QoS 0 64B`, async () => {
    mkdirSync(profileDir, { recursive: true });
    const name = `mqgate-${transport}.cpuprofile`;
    const srv = await startNodeServer('mqgate', {}, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}`]);
    const l = await loadGen();
    let r;
    try {
      r = await l.request('rr', {
        target: { transport, port: transport === 'ws' ? srv.ws : srv.tcp },
        conns: BIG_CONNS,
        inflight: BIG_INFLIGHT,
        qos: 0,
        payloadSize: 64,
        warmupMs: SCALE.profile.warmupMs,
        measureMs: SCALE.profile.measureMs,
      });
    } finally {
      await srv.stop();
    }
    const file = join(profileDir, name);
    if (!existsSync(file)) throw new Error(`no profile written (${file})`);
    const analysis = analyzeProfile(JSON.parse(readFileSync(file, 'utf8')), root);
    return {
      data: { file, rateUnderProfiler: r.rate, ...analysis },
      summary: `${fmt(r.rate)}/s under the profiler; top: ${analysis.functions.slice(0, 3).map((f) => `${f.name} ${f.share}%`).join(', ')}`,
    };
  });
}

// ---- idle connections: memory per connection ------------------------------------------------------
for (const transport of ['tcp', 'ws']) {
  for (const kind of ['mqgate', 'aedes', 'bare']) {
    scenario(`idle memory ${kind} ${transport}`, async ({ deadline }) => {
      const srv = await startNodeServer(kind);
      const l = await loadGen();
      const levels = [];
      try {
        await sleep(300);
        const base = await srv.node.request('mem');
        for (const wanted of SCALE.idle.counts) {
          const target = Math.min(wanted, FD_CAP);
          if (Date.now() > deadline - 15000 && levels.length > 0) break;
          const o = await l.request('idleOpen', { target: { transport, port: transport === 'ws' ? srv.ws : srv.tcp }, count: target }, 180000);
          await sleep(500);
          const m = await srv.node.request('mem');
          const n = o.open;
          levels.push({
            requested: wanted,
            attempted: target,
            open: n,
            failed: o.failed,
            errorSample: o.errorSample,
            cappedBy: target < wanted ? `RLIMIT_NOFILE hard limit ${FD_HARD_LIMIT} (server and load process each need one fd per connection)` : null,
            openSeconds: o.seconds,
            rssPerConn: (m.rss - base.rss) / n,
            heapPerConn: (m.heapUsed - base.heapUsed) / n,
            externalPerConn: (m.external - base.external) / n,
            rss: m.rss,
            heapUsed: m.heapUsed,
          });
        }
        await l.request('idleClose', {});
        return {
          data: { server: kind, transport, base, levels },
          summary: levels.map((x) => `${x.open.toLocaleString('en-US')} conns: ${fmt(x.rssPerConn / 1024)} KiB RSS, ${fmt(x.heapPerConn / 1024)} KiB heap each`).join('; '),
        };
      } finally {
        await l.request('idleClose', {}).catch(() => undefined);
        await srv.stop();
      }
    });
  }
}

// ---- Redis --------------------------------------------------------------------------------------------
let redis; // {url, port, child}
async function ensureRedis() {
  if (redis) return redis;
  if (process.env.REDIS_URL) {
    redis = { url: process.env.REDIS_URL, external: true };
    return redis;
  }
  if (!REDIS_SERVER) return null;
  const port = await freePort();
  const child = spawnChild('redis-server', [REDIS_SERVER, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { ipc: false, quiet: true });
  await waitPort(port);
  redis = { url: `redis://127.0.0.1:${port}`, port, child };
  return redis;
}
function redisClient(url) {
  const { Redis } = require('ioredis');
  return new Redis(url, { maxRetriesPerRequest: 1 });
}
async function commandStats(client) {
  const info = await client.info('commandstats');
  const out = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}
/** Commands that write a stored session (RedisStorage: SET, PEXPIRE, SET NX, DEL). Transport traffic is counted apart. */
const WRITE_COMMANDS = new Set(['set', 'setex', 'psetex', 'pexpire', 'expire', 'del', 'unlink', 'getex', 'hset', 'hmset', 'mset']);
function diffStats(a, b) {
  const d = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) d[k] = v - (a[k] ?? 0);
  delete d.info; // our own INFO calls
  return d;
}

scenario('connection rate with a Redis GET in authenticate (tcp)', async () => {
  const r = await ensureRedis();
  if (!r) return { skipped: 'no Redis (REDIS_URL unset and no redis-server binary)' };
  const out = [];
  for (const kind of ['mqgate', 'aedes', 'bare']) {
    const srv = await startNodeServer(kind, { authRedis: r.url });
    try {
      out.push({ server: kind, ...(await connRate(srv)) });
    } finally {
      await srv.stop();
    }
  }
  return { data: out, summary: out.map((o) => `${o.server} ${fmt(o.rate)}/s`).join(', ') };
});

/**
 * Session persistence in Redis with the in-process transport: commands per bound session
 * (idle, pinging, requesting) and reconnect-and-restore latency.
 */
async function storageScenario({ label, serverConfig, extraServer }) {
  const r = await ensureRedis();
  if (!r) return { skipped: 'no Redis (REDIS_URL unset and no redis-server binary)' };
  const S = SCALE.redis;
  const prefix = `bench:${label}:${Date.now()}:`;
  const extra = extraServer ? await extraServer(r) : null;
  const srv = await startNodeServer('mqgate', { storageRedis: r.url, storagePrefix: prefix, heartbeatInterval: S.heartbeatMs, ...serverConfig(r) });
  const db = redisClient(r.url);
  const l = await loadGen();
  const target = { transport: 'tcp', port: srv.tcp };
  const userPrefix = `${label}-u${Date.now() % 100000}-`;
  const settings = Object.fromEntries(Array.from({ length: S.settings }, (_, i) => [`k${i}`, `value-${i}`]));
  try {
    const opened = await l.request('sessOpen', { target, users: S.users, settings, userPrefix }, 120000);
    if (opened.open === 0) throw new Error(`no session bound: ${opened.errorSample.join('; ')}`);
    await sleep(Math.min(500, S.heartbeatMs / 2));
    const modes = [];
    for (const m of ['idle', 'ping', 'active']) {
      const a = await commandStats(db);
      await l.request('sessTraffic', { mode: m, durationMs: S.windowMs, everyMs: Math.min(1000, S.heartbeatMs / 2) }, S.windowMs + 30000);
      const b = await commandStats(db);
      const d = diffStats(a, b);
      const writes = Object.entries(d).reduce((acc, [k, v]) => acc + (WRITE_COMMANDS.has(k) ? v : 0), 0);
      const total = Object.values(d).reduce((x, y) => x + y, 0);
      const intervals = S.windowMs / S.heartbeatMs;
      modes.push({
        mode: m,
        sessions: opened.open,
        commands: d,
        writesPerSessionPerHeartbeat: writes / opened.open / intervals,
        commandsPerSessionPerMinute: (total / opened.open) * (60000 / S.windowMs),
        writesPerSessionPerMinute: (writes / opened.open) * (60000 / S.windowMs),
      });
    }
    await l.request('sessDrop', {});
    await sleep(300);
    const restoreUsers = Math.min(S.restoreUsers, opened.open);
    const rs = await l.request('restore', { target, users: restoreUsers, userPrefix, expectKeys: Object.keys(settings), concurrency: 10 }, 120000);
    return {
      data: {
        heartbeatMs: S.heartbeatMs,
        windowMs: S.windowMs,
        sessions: opened.open,
        bindSeconds: opened.seconds,
        modes,
        restore: { users: restoreUsers, restored: rs.restored, missing: rs.missing, errorSample: rs.errorSample, latency: summarize([rs.hist]) },
      },
      summary:
        modes.map((x) => `${x.mode}: ${fmt(x.writesPerSessionPerHeartbeat)} writes/session/heartbeat`).join(', ') +
        `; restore p50 ${summarize([rs.hist]).p50} ms p99 ${summarize([rs.hist]).p99} ms (${rs.restored}/${restoreUsers} restored)`,
    };
  } finally {
    db.disconnect();
    await l.request('sessDrop', {}).catch(() => undefined);
    await srv.stop();
    if (extra) await extra.stop();
  }
}

scenario('redis storage: commands per session, reconnect-and-restore (in-process transport)', () =>
  storageScenario({ label: 'inproc', serverConfig: () => ({}) }),
);

/** RedisTransport (packages/rpc) once it exists: gate and modules in two processes. */
function redisTransportAvailable() {
  try {
    const rpc = require(join(root, 'packages/rpc/dist/redis/index.js'));
    return typeof rpc.RedisTransport === 'function';
  } catch {
    return false;
  }
}
scenario('redis transport: request/reply vs in-process (gate and module in 2 processes)', async () => {
  if (!redisTransportAvailable()) return { skipped: 'RedisTransport not available' };
  const r = await ensureRedis();
  if (!r) return { skipped: 'no Redis (REDIS_URL unset and no redis-server binary)' };
  const mod = await startNodeServer('mqgate', { role: 'module', transport: 'redis', transportRedis: r.url, tcp: false, ws: false });
  const gate = await startNodeServer('mqgate', { role: 'gate', transport: 'redis', transportRedis: r.url });
  const srv = { kind: 'mqgate-redis', tcp: gate.tcp, ws: gate.ws, pids: [...gate.pids, ...mod.pids] };
  try {
    await sleep(500);
    const out = [];
    for (const qos of [0, 1]) {
      for (const [conns, inflight] of SCALE.rr.configs) {
        const trials = [];
        for (let t = 0; t < SCALE.rr.trials; t++) trials.push(await runRrCell(srv, { transport: 'tcp', conns, inflight, qos, payload: 64 }));
        const inproc = rrCells.find((c) => c.server === 'mqgate' && c.transport === 'tcp' && c.conns === conns && c.qos === qos && c.payload === 64);
        const rate = median(trials.map((x) => x.rate));
        out.push({ conns, inflight, qos, rate, inProcessRate: inproc?.rate ?? null, ratio: inproc?.rate ? rate / inproc.rate : null, latency: summarize(trials.map((x) => x.hist)) });
      }
    }
    return { data: out, summary: out.map((o) => `${o.conns}x${o.inflight} qos${o.qos}: ${fmt(o.rate)}/s (${o.ratio ? fmt(o.ratio) + '×' : '?'} in-process)`).join(', ') };
  } finally {
    await gate.stop();
    await mod.stop();
  }
});

scenario('redis transport: commands per session, reconnect-and-restore (2 processes)', async () => {
  if (!redisTransportAvailable()) return { skipped: 'RedisTransport not available' };
  let mod;
  return storageScenario({
    label: 'rt',
    serverConfig: (r) => ({ role: 'gate', transport: 'redis', transportRedis: r.url }),
    extraServer: async (r) => {
      mod = await startNodeServer('mqgate', { role: 'module', transport: 'redis', transportRedis: r.url, tcp: false, ws: false });
      return mod;
    },
  });
});

// ---- main ---------------------------------------------------------------------------------------------
const t0 = Date.now();
console.log(
  `mqgate bench (${mode}): Node ${process.version}, ${CPU_COUNT} × ${results.machine.cpuModel}, fd hard limit ${FD_HARD_LIMIT}` +
    (results.machine.pinning ? `, servers pinned to CPU ${PINNING.server}, load to CPU ${PINNING.load}` : ', no CPU pinning (the kernel schedules servers and load on both cores)'),
);
try {
  await runPlan();
} finally {
  if (load) await load.stop();
  for (const s of Object.values(rrServers)) await s.stop().catch(() => undefined);
  if (redis?.child) await stopProcess(redis.child, 3000, 'SIGTERM');
  await sleep(100);
  killAll();
}
results.finishedAt = new Date().toISOString();
results.seconds = Math.round((Date.now() - t0) / 1000);
results.leftRunning = liveChildren();
results.targets = evaluateTargets(results, rrCells);
const jsonPath = join(outDir, `${stamp}.json`);
writeFileSync(jsonPath, JSON.stringify(results, null, 2));
const md = renderMarkdown(results, rrCells);
writeMarkdown(mdPath, md);
console.log('');
console.log(md.console);
console.log(`\nresults: ${jsonPath}`);
console.log(`markdown: ${mdPath}`);
console.log(`RESULTS_JSON ${jsonPath}`);
const failed = Object.entries(results.scenarios).filter(([, v]) => v.status === 'failed');
console.log(`done in ${results.seconds} s: ${Object.keys(results.scenarios).length} scenarios, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
