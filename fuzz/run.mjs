#!/usr/bin/env node
// mqgate's protocol fuzzer. `npm run fuzz` (20 000 cases), `npm run fuzz -- --seconds 60`
// (CI's bounded pass), `npm run fuzz -- --cases 1000000` (the full run).
//
// Starts the gate (fuzz/gate.mjs: the demo's modules, TCP and WebSocket) as a child process
// and sends it mutated packet sequences (fuzz/mutators.mjs over fuzz/corpus.mjs), each on a
// fresh connection, many at once. The gate must answer or close every connection within
// --case-timeout, stay alive, and answer the liveness probe (fuzz/probe.mjs: a well-behaved
// client's request/reply round trip every --probe-every cases). A crash, a hang (a
// connection neither answered nor closed while the gate is alive), a failed probe, a failed
// connect or the gate's RSS above --max-rss-mb stops the run: the reproducer (seeds, exact
// bytes, transport) goes to --out and the exit code is 1. Otherwise the figures are printed
// (and a `FUZZ_RESULT {json}` line) and the exit code is 0.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { buildCase } from './mutators.mjs';
import { runCase } from './case.mjs';
import { probe } from './probe.mjs';
import { startTarget } from './target.mjs';
import { caseSeed, randomSeed } from './prng.mjs';
import { caseRecord, writeReproducer } from './reproducer.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function usage(message) {
  console.error(`fuzz: ${message}
usage: node fuzz/run.mjs [--cases N] [--seconds S] [--seed N] [--out DIR] [--concurrency N]
       [--probe-every N] [--probe-timeout MS] [--case-timeout MS] [--connect-timeout MS]
       [--settle MS] [--transports tcp,ws] [--levels 3,4,5] [--keep-going] [--max-rss-mb N]
       [--fault stall|crash] [--fault-after MS]`);
  process.exit(2);
}

function cli() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        cases: { type: 'string' },
        seconds: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        concurrency: { type: 'string', default: '128' },
        'probe-every': { type: 'string', default: '250' },
        'probe-timeout': { type: 'string', default: '3000' },
        'case-timeout': { type: 'string' },
        'connect-timeout': { type: 'string', default: '500' },
        settle: { type: 'string', default: '25' },
        transports: { type: 'string', default: 'tcp,ws' },
        levels: { type: 'string', default: '3,4,5' },
        'keep-going': { type: 'boolean', default: false },
        'max-rss-mb': { type: 'string', default: '1024' },
        fault: { type: 'string' },
        'fault-after': { type: 'string', default: '1500' },
      },
    }));
  } catch (err) {
    usage(err.message);
  }
  const num = (name, v, min = 1) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) usage(`--${name} must be a number ≥ ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const transports = values.transports.split(',').map((t) => t.trim());
  if (!transports.length || transports.some((t) => t !== 'tcp' && t !== 'ws')) usage('--transports is a list of tcp and ws');
  const levels = values.levels.split(',').map(Number);
  if (!levels.length || levels.some((l) => ![3, 4, 5].includes(l))) usage('--levels is a list of 3, 4 and 5');
  if (values.fault && !['stall', 'crash'].includes(values.fault)) usage('--fault is stall or crash');
  const seconds = values.seconds === undefined ? Infinity : num('seconds', values.seconds, 0.1);
  const connectTimeout = num('connect-timeout', values['connect-timeout']);
  return {
    // --seconds alone runs for that long; neither gives the default pass of 20 000 cases.
    cases: values.cases !== undefined ? num('cases', values.cases) : seconds === Infinity ? 20_000 : Infinity,
    seconds,
    seed: values.seed !== undefined ? num('seed', values.seed, 0) >>> 0 : randomSeed(),
    out: resolve(values.out ?? join(root, 'fuzz', 'findings')),
    concurrency: num('concurrency', values.concurrency),
    probeEvery: num('probe-every', values['probe-every']),
    probeTimeout: num('probe-timeout', values['probe-timeout']),
    connectTimeout,
    caseTimeout: values['case-timeout'] !== undefined ? num('case-timeout', values['case-timeout']) : connectTimeout + 2500,
    settle: num('settle', values.settle, 0),
    transports,
    levels,
    // After a crash: restart the gate, write a reproducer per distinct crash site, go on; exit 1 at the end.
    keepGoing: values['keep-going'],
    maxRss: num('max-rss-mb', values['max-rss-mb']) * 1024 * 1024,
    fault: values.fault,
    faultAfter: num('fault-after', values['fault-after'], 0),
  };
}

const opts = cli();
const mb = (b) => (b === undefined ? 'n/a' : `${(b / 1024 / 1024).toFixed(1)} MB`);
const fmt = (n) => n.toLocaleString('en-US');

const stats = {
  cases: 0,
  closed: 0,
  answered: 0,
  answeredThenClosed: 0,
  hangs: 0,
  crashes: 0,
  probeFailures: 0,
  connectErrors: 0,
  byTransport: { tcp: { cases: 0, closed: 0, answered: 0 }, ws: { cases: 0, closed: 0, answered: 0 } },
  probes: 0,
  probeMaxMs: 0,
  /** Probes that missed once and passed on the retry. */
  probeRetries: 0,
  bytesSent: 0,
  /** Cases whose connection the gate's crash cut (--keep-going): not counted. */
  lostToCrashes: 0,
  /** --keep-going: crash site (error and first frame) → { count, reproducer, firstCase }. */
  crashSites: {},
};

const inflight = new Map();
const recent = [];
let finding;
let stopping = false;
let target;
/** Bumped at every restart of the gate (--keep-going). */
let generation = 0;
let restarting;

const startedAt = Date.now();
const elapsed = () => (Date.now() - startedAt) / 1000;
const command = `node fuzz/run.mjs ${process.argv.slice(2).join(' ')}`.trim();

/** Records the first finding and writes its reproducer; the run then winds down. */
function fail(kind, detail, cases, extra = {}) {
  if (finding) return;
  stopping = true;
  finding = { kind, detail };
  const path = writeReproducer(opts.out, {
    kind,
    detail,
    runSeed: opts.seed,
    command,
    gate: { connectTimeout: opts.connectTimeout, fault: opts.fault ?? null },
    caseTimeout: opts.caseTimeout,
    replay: 'node fuzz/replay.mjs <this file>',
    ...extra,
    cases,
  });
  finding.reproducer = path;
  console.error(`fuzz: ${kind.toUpperCase()}: ${detail}\nfuzz: reproducer written to ${path}`);
}

const suspects = () => [
  ...[...inflight].map(([index, kase]) => caseRecord(index, kase, { state: 'in flight' })),
  ...recent.map(({ index, kase, result }) => caseRecord(index, kase, { state: 'done', result })),
];

function remember(index, kase, result) {
  recent.push({ index, kase, result });
  // Enough to still hold a crasher after every other connection in flight has failed with it.
  if (recent.length > 2 * opts.concurrency + 32) recent.shift();
}

/**
 * Runs `fn` unless gate process `t` (the one the failure was seen on) exits within a second
 * or has been replaced: then the failure is the crash's echo, and the crash the finding.
 */
async function whileAlive(t, fn) {
  await Promise.race([t.exited, new Promise((r) => setTimeout(r, 1000))]);
  if (t.alive() && t === target) fn();
}

/** The crash's error line and first stack frame, from the gate's output. */
function crashSite(output) {
  const m = /^(\w*Error\b[^\n]*)\n(?:\s+at ([^\n]*))?/m.exec(output);
  return m
    ? `${m[1]} at ${(m[2] ?? '?').replace(/\(.*[\\/]((?:packages|node_modules)[\\/].*)\)/, '($1)')}`
    : `exit without a stack trace: ${output.slice(-200)}`;
}

function watch(t) {
  t.exited.then((e) => {
    if (e.expected) return;
    stats.crashes++;
    if (!opts.keepGoing) {
      fail(
        'crash',
        `the gate exited (code ${e.code}, signal ${e.signal}) during the run; one of these cases did it (narrow it down: node fuzz/replay.mjs FILE)`,
        suspects(),
        { gateOutput: e.output },
      );
      return;
    }
    const site = crashSite(e.output);
    const known = stats.crashSites[site];
    if (known) known.count++;
    else {
      const path = writeReproducer(opts.out, {
        kind: 'crash',
        detail: `the gate exited (code ${e.code}, signal ${e.signal}): ${site}; one of these cases did it (narrow it down: node fuzz/replay.mjs FILE)`,
        runSeed: opts.seed,
        command,
        gate: { connectTimeout: opts.connectTimeout },
        caseTimeout: opts.caseTimeout,
        gateOutput: e.output,
        cases: suspects(),
      });
      stats.crashSites[site] = { count: 1, reproducer: path, atCase: nextIndex };
      console.error(`fuzz: CRASH (new site, going on): ${site}\nfuzz: reproducer written to ${path}`);
    }
    if (stopping) return;
    restarting = startTarget({ connectTimeout: opts.connectTimeout }).then((t2) => {
      target = t2;
      generation++;
      restarting = undefined;
      watch(t2);
    });
  });
}

// ---- probes ------------------------------------------------------------------------------

let probeRunning;
let probeCount = 0;
let sinceProbe = 0;
let lastProbeAt = 0;
const PROBE_KINDS = [
  ['tcp', 4],
  ['ws', 5],
  ['tcp', 5],
  ['ws', 3],
  ['tcp', 3],
  ['ws', 4],
];

function runProbe() {
  const n = probeCount++;
  const [transport, level] = PROBE_KINDS[n % PROBE_KINDS.length];
  sinceProbe = 0;
  lastProbeAt = Date.now();
  if (restarting) return (probeRunning = restarting.then(() => ({ ok: true, ms: 0 })).finally(() => (probeRunning = undefined)));
  const t = target;
  const attempt = () => probe(t, { transport, level, timeout: opts.probeTimeout, n });
  // A miss is retried once on a new connection (the gate's short connectTimeout can cut a
  // probe whose CONNECT waited behind a busy event loop); two in a row fail the run.
  probeRunning = attempt()
    .then((first) =>
      first.ok || !t.alive()
        ? first
        : attempt().then((second) =>
            second.ok ? { ...second, retried: first.error } : { ...second, error: `${first.error}; again: ${second.error}` },
          ),
    )
    .then((r) => {
      probeRunning = undefined;
      stats.probes++;
      stats.probeMaxMs = Math.max(stats.probeMaxMs, r.ms);
      if (r.retried) stats.probeRetries++;
      if (r.ok || finding) return r;
      return whileAlive(t, () => {
        stats.probeFailures++;
        fail('probe', `liveness probe ${n} (${transport}, level ${level}) failed twice: ${r.error}`, suspects(), { gateOutput: t.output() });
      }).then(() => r);
    });
  return probeRunning;
}

function maybeProbe() {
  if (probeRunning || stopping) return;
  if (sinceProbe >= opts.probeEvery || Date.now() - lastProbeAt > 2000) runProbe();
}

// ---- cases -------------------------------------------------------------------------------

let nextIndex = 0;

async function worker() {
  while (!stopping && nextIndex < opts.cases && elapsed() < opts.seconds) {
    if (restarting) await restarting;
    if (stopping) break;
    const index = nextIndex++;
    const kase = buildCase(caseSeed(opts.seed, index), { transports: opts.transports, levels: opts.levels });
    inflight.set(index, kase);
    const gen = generation;
    const gate = target;
    const result = await runCase(kase, gate, { timeout: opts.caseTimeout, settle: opts.settle });
    inflight.delete(index);
    remember(index, kase, result);
    if (finding) break;
    if (gen !== generation || !gate.alive()) {
      stats.lostToCrashes++; // the crash, recorded on its own, cut this one
      continue;
    }
    stats.cases++;
    sinceProbe++;
    for (const ch of kase.chunks) stats.bytesSent += ch.bytes.length;
    const t = stats.byTransport[kase.transport];
    t.cases++;
    if (result.outcome === 'closed') {
      stats.closed++;
      t.closed++;
      if (result.answered) stats.answeredThenClosed++;
    } else if (result.outcome === 'answered') {
      stats.answered++;
      t.answered++;
    } else if (result.outcome === 'hang') {
      if (gate.alive() && gate === target) {
        stats.hangs++;
        fail(
          'hang',
          `case ${index} (${kase.transport}, level ${kase.level}): the gate neither answered nor closed the connection within ${opts.caseTimeout} ms`,
          [caseRecord(index, kase, { result })],
          { gateOutput: gate.output() },
        );
      }
    } else if (result.outcome === 'connect-error' && kase.transport === 'ws' && result.error === 'ECONNRESET' && result.ms >= opts.connectTimeout) {
      // The gate's connectTimeout runs through the WebSocket upgrade and cut this one, as it
      // must (a loaded event loop upgraded it late): a close by the gate, not a failure.
      stats.closed++;
      t.closed++;
    } else if (result.outcome === 'connect-error') {
      await whileAlive(gate, () => {
        stats.connectErrors++;
        fail('connect-error', `case ${index} (${kase.transport}): ${result.error}`, [caseRecord(index, kase, { result })]);
      });
      if (gate !== target || !gate.alive()) {
        // refused by a gate that had just crashed (--keep-going): not a case
        stats.cases--;
        t.cases--;
        stats.lostToCrashes++;
      }
    }
    maybeProbe();
  }
}

// ---- the run -----------------------------------------------------------------------------

async function main() {
  const limit =
    opts.cases === Infinity
      ? `${opts.seconds} s`
      : opts.seconds === Infinity
        ? `${fmt(opts.cases)} cases`
        : `${fmt(opts.cases)} cases or ${opts.seconds} s`;
  console.log(
    `fuzz: seed ${opts.seed}, ${limit}, ${opts.concurrency} connections at a time over ${opts.transports.join(' + ')}, probe every ${opts.probeEvery} cases (bound ${opts.probeTimeout} ms), case timeout ${opts.caseTimeout} ms, gate connectTimeout ${opts.connectTimeout} ms`,
  );
  target = await startTarget({ connectTimeout: opts.connectTimeout, fault: opts.fault, faultAfter: opts.faultAfter });
  watch(target);
  const first = await runProbe();
  if (!first.ok) return finishRun();
  const rssBefore = target.rss();
  let rssPeak = rssBefore ?? 0;
  // (after a --keep-going restart the RSS is the new process')
  const sampler = setInterval(() => {
    const rss = target.rss();
    if (rss === undefined) return;
    rssPeak = Math.max(rssPeak, rss);
    if (rss > opts.maxRss) fail('memory', `gate RSS ${mb(rss)} over --max-rss-mb ${mb(opts.maxRss)}`, suspects(), { gateOutput: target.output() });
  }, 1000);
  const progress = setInterval(() => {
    console.log(
      `fuzz: ${elapsed().toFixed(0)} s: ${fmt(stats.cases)} cases (${Math.round(stats.cases / elapsed())}/s), closed by the gate ${fmt(stats.closed)}, answered ${fmt(stats.answered)}, probes ${stats.probes} ok, gate RSS ${mb(target.rss())}`,
    );
  }, 10_000);
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const casesSeconds = elapsed();
  if (restarting) await restarting;
  if (probeRunning) await probeRunning;
  if (!finding) await runProbe(); // the last word: the gate still serves after the last case
  clearInterval(sampler);
  clearInterval(progress);
  return finishRun({ rssBefore, rssAfter: target.rss(), rssPeak, casesSeconds });
}

async function finishRun(m = {}) {
  stopping = true;
  if (restarting) await restarting;
  if (target) await target.stop();
  if (!finding && stats.crashes > 0)
    finding = {
      kind: 'crash',
      detail: `${stats.crashes} crashes at ${Object.keys(stats.crashSites).length} site(s)`,
      reproducer: Object.values(stats.crashSites)
        .map((c) => c.reproducer)
        .join(', '),
    };
  const seconds = m.casesSeconds ?? elapsed();
  const result = {
    ok: !finding,
    seed: opts.seed,
    command,
    cases: stats.cases,
    seconds: Number(seconds.toFixed(1)),
    perSecond: Math.round(stats.cases / seconds),
    closedByGate: stats.closed,
    answeredThenClosed: stats.answeredThenClosed,
    answeredLeftOpen: stats.answered,
    byTransport: stats.byTransport,
    crashes: stats.crashes,
    hangs: stats.hangs,
    probeFailures: stats.probeFailures,
    connectErrors: stats.connectErrors,
    lostToCrashes: stats.lostToCrashes,
    crashSites: stats.crashSites,
    probes: stats.probes,
    probeRetries: stats.probeRetries,
    probeMaxMs: stats.probeMaxMs,
    bytesSent: stats.bytesSent,
    rssBefore: m.rssBefore,
    rssAfter: m.rssAfter,
    rssPeak: m.rssPeak,
    finding: finding ?? null,
    machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', platform: `${process.platform} ${process.arch}` },
    date: new Date().toISOString(),
  };
  console.log(
    [
      `fuzz: ${finding ? `FAILED (${finding.kind})` : 'passed'}, seed ${opts.seed}`,
      `  cases            ${fmt(stats.cases)} in ${seconds.toFixed(1)} s (${fmt(result.perSecond)}/s); tcp ${fmt(stats.byTransport.tcp.cases)}, ws ${fmt(stats.byTransport.ws.cases)}; ${mb(stats.bytesSent)} sent`,
      `  closed by gate   ${fmt(stats.closed)} (${fmt(stats.answeredThenClosed)} of them after answering)`,
      `  answered, open   ${fmt(stats.answered)}`,
      `  crashes          ${stats.crashes}${stats.crashes && opts.keepGoing ? ` at ${Object.keys(stats.crashSites).length} site(s), ${fmt(stats.lostToCrashes)} cases cut by them (not counted)` : ''}`,
      ...Object.entries(stats.crashSites).map(([site, c]) => `    ${c.count} x ${site}`),
      `  hangs            ${stats.hangs}`,
      `  probe failures   ${stats.probeFailures} (${stats.probes} probes, slowest ${stats.probeMaxMs} ms, ${stats.probeRetries} passed on a retry)`,
      `  connect errors   ${stats.connectErrors}`,
      `  gate RSS         before ${mb(m.rssBefore)}, after ${mb(m.rssAfter)}, peak ${mb(m.rssPeak)}`,
      ...(finding ? [`  reproducer       ${finding.reproducer}`] : []),
    ].join('\n'),
  );
  console.log(`FUZZ_RESULT ${JSON.stringify(result)}`);
  process.exit(finding ? 1 : 0);
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    stopping = true;
    (target ? target.stop() : Promise.resolve()).then(() => process.exit(130));
  });
}

main().catch(async (err) => {
  console.error(`fuzz: ${err.stack ?? err}`);
  if (target) await target.stop();
  process.exit(2);
});
