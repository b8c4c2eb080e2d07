#!/usr/bin/env node
// @ts-check
// mqgate benchmark runner. `npm run bench` (default, < 10 min), `-- --quick` (< 2 min),
// `-- --smoke` (every scenario ~1 s, tiny counts; used by the jest smoke test).
// Every server and the load generator run in their own child process on loopback; every
// child is stopped at the end, on failure and on SIGINT/SIGTERM.
//
// This file orders the scenarios (one file each under scenarios/) and gives each the run
// resources it declares in `needs` (see lib/plan.mjs); results go to JSON and markdown.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll, liveChildren, started, FD_HARD_LIMIT, PINNING, CPU_COUNT } from './lib/proc.mjs';
import { sleep } from './lib/common.mjs';
import { parseCli } from './lib/cli.mjs';
import { SCALES } from './lib/scale.mjs';
import { createRig } from './lib/rig.mjs';
import { natsServer } from './lib/nats.mjs';
import { redisServer } from './lib/redis.mjs';
import { quietWaiter } from './lib/quiet.mjs';
import { runPlan } from './lib/plan.mjs';
import { renderMarkdown, writeMarkdown, writeHistoryMarkdown } from './lib/report.mjs';
import { evaluateTargets } from './lib/targets.mjs';
import { latestProfileSummaryPath, profileSummary, readProfileSummary, runStamp, saveProfileSummary } from './lib/profile-history.mjs';
import { sharedServers, setup, teardown } from './scenarios/shared-servers.mjs';
import { closedLoopCellsOf, requestReplyScenarios } from './scenarios/closed-loop.mjs';
import { mqtt5RequestReply } from './scenarios/mqtt5.mjs';
import { sdkRequestReply } from './scenarios/sdk.mjs';
import { openLoop } from './scenarios/open-loop.mjs';
import { connectionRate, connectionRateWithRedis } from './scenarios/connection-rate.mjs';
import { fanOut } from './scenarios/fan-out.mjs';
import { profileScenarios } from './scenarios/profile.mjs';
import { idleMemoryScenarios } from './scenarios/idle-memory.mjs';
import { resumeScenarios } from './scenarios/resume.mjs';
import { redisStorageInProcess, redisStorageOverTransport } from './scenarios/redis-storage.mjs';
import { natsTransportRequestReply, redisTransportRequestReply } from './scenarios/redis-transport.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = parseCli();

// ---- --report-from: the report of a saved run, nothing measured ----------------------------------
if (args['report-from']) {
  const saved = JSON.parse(readFileSync(resolve(args['report-from']), 'utf8'));
  const cells = closedLoopCellsOf(saved);
  saved.targets = evaluateTargets(saved, cells);
  const md = renderMarkdown(saved, cells);
  const to = resolve(args.md ?? (saved.mode === 'default' ? join(root, 'BENCHMARKS.md') : `${args['report-from'].replace(/\.json$/, '')}.md`));
  writeMarkdown(to, md);
  console.log(`${md.console}\nmarkdown: ${to}`);
  process.exit(0);
}
const { mode } = args;
const SCALE = SCALES[mode];

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const outDir = resolve(args.out ?? join(root, 'bench-results'));
mkdirSync(outDir, { recursive: true });
const mdPath = args.md ? resolve(args.md) : mode === 'default' && !args.only ? join(root, 'BENCHMARKS.md') : join(outDir, `${stamp}.md`);

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

// ---- what the scenarios may need (each names its own in `needs`) ----------------------------
const rig = createRig({ pin: args.pin });
const resources = {
  rig,
  servers: sharedServers(rig),
  closedLoopCells: [], // every request-reply cell measured; also the report's request/reply tables
  redis: redisServer(),
  nats: natsServer(),
  profileDir: join(outDir, `${stamp}-prof`),
  root,
};

// ---- the order of a full run --------------------------------------------------------------
const plan = [
  setup(),
  ...requestReplyScenarios(SCALE),
  mqtt5RequestReply(SCALE),
  openLoop(SCALE),
  connectionRate(SCALE),
  fanOut(SCALE),
  teardown(),
  sdkRequestReply(SCALE),
  ...profileScenarios(SCALE),
  ...idleMemoryScenarios(SCALE),
  ...resumeScenarios(SCALE),
  connectionRateWithRedis(SCALE),
  redisStorageInProcess(SCALE),
  redisTransportRequestReply(SCALE),
  natsTransportRequestReply(SCALE),
  redisStorageOverTransport(SCALE),
];

// ---- main ---------------------------------------------------------------------------------------------
const t0 = Date.now();
console.log(
  `mqgate bench (${mode}): Node ${process.version}, ${CPU_COUNT} × ${results.machine.cpuModel}, fd hard limit ${FD_HARD_LIMIT}` +
    (results.machine.pinning
      ? `, servers pinned to CPU ${PINNING.server}, load to CPU ${PINNING.load}`
      : ', no CPU pinning (the kernel schedules servers and load on both cores)'),
);
try {
  await runPlan(plan, {
    only: args.only,
    limitMs: SCALE.scenarioLimitMs,
    waitQuiet: quietWaiter(SCALE.quiet),
    resources,
    entries: results.scenarios,
  });
} finally {
  await rig.stop();
  await resources.servers.stopAll().catch(() => undefined);
  await resources.redis.stop();
  await resources.nats.stop();
  await sleep(100);
  killAll();
}
const cells = resources.closedLoopCells;
results.finishedAt = new Date().toISOString();
results.seconds = Math.round((Date.now() - t0) / 1000);
results.leftRunning = liveChildren();
results.targets = evaluateTargets(results, cells);
// Profiles across runs: the baseline (before) is read first, then this run's summary is saved.
const historyDir = join(root, 'bench', 'history');
const fullRun = mode === 'default' && !args.only;
const baselinePath = args['profile-baseline'] ? resolve(args['profile-baseline']) : latestProfileSummaryPath(historyDir);
if (baselinePath) results.profileBaseline = { ...readProfileSummary(baselinePath), path: relative(root, baselinePath) };
const summary = profileSummary(results, root);
if (summary && (fullRun || args['save-profile'])) results.profileSaved = relative(root, saveProfileSummary(historyDir, summary));
const jsonPath = join(outDir, `${stamp}.json`);
writeFileSync(jsonPath, JSON.stringify(results, null, 2));
const md = renderMarkdown(results, cells);
writeMarkdown(mdPath, md);
if (fullRun) console.log(`history: ${relative(root, writeHistoryMarkdown(join(historyDir, `${runStamp(results.startedAt)}.md`), results, md))}`);
console.log('');
console.log(md.console);
console.log(`\nresults: ${jsonPath}`);
console.log(`markdown: ${mdPath}`);
console.log(`RESULTS_JSON ${jsonPath}`);
const failed = Object.entries(results.scenarios).filter(([, v]) => v.status === 'failed');
console.log(`done in ${results.seconds} s: ${Object.keys(results.scenarios).length} scenarios, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
