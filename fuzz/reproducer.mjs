// @ts-check
// Reproducers: what a failing run writes (JSON, one file per finding) and what
// `node fuzz/replay.mjs FILE` reads back. A case is stored whole (seed, transport, level,
// the exact bytes of every chunk and where the WebSocket frames end), so a reproducer
// replays without the corpus and keeps working when the corpus or the mutators change.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A case as JSON. */
export function caseRecord(index, kase, extra = {}) {
  return {
    index,
    seed: kase.seed,
    transport: kase.transport,
    level: kase.level,
    text: kase.text,
    base: kase.base,
    mutations: kase.mutations,
    bytes: Buffer.concat(kase.chunks.map((c) => c.bytes)).toString('hex'),
    chunks: kase.chunks.map((c) => ({ hex: c.bytes.toString('hex'), ...(c.fin === false ? { fin: false } : {}) })),
    ...extra,
  };
}

/** A case back from JSON, as runCase() takes it. */
export function caseFromRecord(r) {
  return {
    seed: r.seed,
    transport: r.transport,
    level: r.level,
    text: !!r.text,
    base: r.base ?? [],
    mutations: r.mutations ?? [],
    chunks: (r.chunks ?? [{ hex: r.bytes }]).map((c) => ({ bytes: Buffer.from(c.hex, 'hex'), ...(c.fin === false ? { fin: false } : {}) })),
  };
}

/**
 * Writes `finding` ({ kind, detail, runSeed, cases: [caseRecord...], ... }) to
 * `dir/fuzz-<kind>-<runSeed>-<first case index>.json`; returns the path.
 */
export function writeReproducer(dir, finding) {
  mkdirSync(dir, { recursive: true });
  const first = finding.cases[0]?.index ?? 'none';
  const path = join(dir, `fuzz-${finding.kind}-${finding.runSeed}-${first}.json`);
  writeFileSync(path, JSON.stringify({ ...finding, writtenAt: new Date().toISOString(), node: process.version }, null, 2) + '\n');
  return path;
}

export function readReproducer(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}
