#!/usr/bin/env node
// @ts-check
// Replays a reproducer against a fresh gate and finds the case the gate fails on.
//
//   node fuzz/replay.mjs FILE [--concurrency N] [--case-timeout MS]
//       every case of a reproducer written by run.mjs; a case that crashes the gate or
//       hangs is written alone to FILE with `.min.json` for `.json`
//   node fuzz/replay.mjs --seed RUNSEED --case INDEX
//       case INDEX of the run seeded RUNSEED, regenerated from the corpus
//
// Exit code 1 when the failure is reproduced, 0 when not.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { buildCase } from './mutators.mjs';
import { runCase } from './case.mjs';
import { probe } from './probe.mjs';
import { startTarget } from './target.mjs';
import { caseSeed } from './prng.mjs';
import { caseFromRecord, caseRecord, readReproducer } from './reproducer.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seed: { type: 'string' },
    case: { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    'case-timeout': { type: 'string' },
    'connect-timeout': { type: 'string' },
  },
});

let file;
let records;
let connectTimeout = Number(values['connect-timeout'] ?? 500);
if (positionals[0]) {
  file = positionals[0];
  const r = readReproducer(file);
  records = r.cases;
  connectTimeout = Number(values['connect-timeout'] ?? r.gate?.connectTimeout ?? 500);
  console.log(`replay: ${r.kind}${r.runSeed === undefined ? '' : ` of run seed ${r.runSeed}`}: ${r.detail}; ${records.length} case(s)`);
} else if (values.seed !== undefined && values.case !== undefined) {
  const index = Number(values.case);
  records = [caseRecord(index, buildCase(caseSeed(Number(values.seed) >>> 0, index)))];
} else {
  console.error('usage: node fuzz/replay.mjs FILE | --seed RUNSEED --case INDEX');
  process.exit(2);
}
const caseTimeout = Number(values['case-timeout'] ?? connectTimeout + 2500);
const concurrency = Number(values.concurrency);
const run = (target, r) => runCase(caseFromRecord(r), target, { timeout: caseTimeout, settle: 25 });
const died = (target) => Promise.race([target.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 300))]);

function report(kind, r, target, result) {
  console.log(`replay: REPRODUCED (${kind}) by case ${r.index} (${r.transport}, level ${r.level}, seed ${r.seed})`);
  console.log(`  base       ${r.base?.join(' | ')}`);
  console.log(`  mutations  ${r.mutations?.join('\n             ')}`);
  console.log(`  bytes      ${r.bytes}`);
  if (result) console.log(`  result     ${JSON.stringify(result)}`);
  const out = target.output().replace(/^FUZZ_GATE .*\n/m, '');
  if (out.trim()) console.log(`  gate said:\n${out.trim().slice(-4000)}`);
  if (file) {
    const min = file.replace(/\.json$/, '') + '.min.json';
    writeFileSync(min, JSON.stringify({ kind, runSeed: null, fromFile: file, gateOutput: out.slice(-8000), cases: [r] }, null, 2) + '\n');
    console.log(`  written to ${min}`);
  }
}

async function main() {
  let target = await startTarget({ connectTimeout });
  for (let i = 0; i < records.length; i += concurrency) {
    const batch = records.slice(i, i + concurrency);
    const results = await Promise.all(batch.map((r) => run(target, r)));
    if (!(await died(target))) {
      const hung = results.findIndex((x) => x.outcome === 'hang');
      if (hung >= 0) {
        report('hang', batch[hung], target, results[hung]);
        await target.stop();
        return 1;
      }
      continue;
    }
    // One of this batch killed it: again, one at a time.
    for (const r of batch) {
      target = await startTarget({ connectTimeout });
      const result = await run(target, r);
      if (await died(target)) {
        report('crash', r, target, result);
        return 1;
      }
      await target.stop();
    }
    console.log('replay: the gate died in a batch but no single case of it kills it alone');
    return 1;
  }
  const p = await probe(target, { transport: 'tcp', level: 4, timeout: 3000, n: 1 });
  await target.stop();
  if (!p.ok) {
    console.log(`replay: REPRODUCED (probe): after all ${records.length} cases the probe failed: ${p.error}`);
    return 1;
  }
  console.log(`replay: not reproduced: ${records.length} case(s) replayed, the gate lived and the probe passed (${p.ms} ms)`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
