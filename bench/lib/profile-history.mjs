// @ts-check
// Profile summaries kept across runs: a run's hot spots (profile scenarios) saved as
// bench/history/profile-<YYYY-MM-DD-HHMM>.json, an earlier one read back as the baseline, and
// the before → after rows the report shows. A summary:
// {takenAt, commit, mode, profiles: [{name, transport, rateUnderProfiler, busyShare, durationMs,
//  foreignCores, functions: [{name, location, group, share}], groups: [{group, share}]}]}
// (shares in % of busy samples, as lib/profile.mjs computes them).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** `2026-12-07T12:37:54.135Z` → `2026-12-07-1237` (UTC): the name of a run's history files. */
export const runStamp = (iso) => `${iso.slice(0, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}`;

function commitOf(root) {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/** The profile summary of a run's results, or null when no profile scenario succeeded. */
export function profileSummary(results, root) {
  const profiles = Object.entries(results.scenarios)
    .filter(([name, v]) => name.startsWith('profile') && v.status === 'ok')
    .map(([name, v]) => ({
      name: name.replace('profile: ', ''),
      transport: / (tcp|ws) /.exec(name)?.[1] ?? null,
      rateUnderProfiler: Math.round(v.data.rateUnderProfiler),
      busyShare: v.data.busyShare,
      durationMs: v.data.durationMs,
      foreignCores: v.foreignCores ?? null,
      functions: v.data.functions.map(({ name: fn, location, group, share }) => ({ name: fn, location, group, share })),
      groups: v.data.groups,
    }));
  if (profiles.length === 0) return null;
  return { takenAt: results.startedAt, commit: commitOf(root), mode: results.mode, profiles };
}

/** Writes `summary` as `dir/profile-<stamp>.json`; returns the path. */
export function saveProfileSummary(dir, summary) {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `profile-${runStamp(summary.takenAt)}.json`);
  writeFileSync(path, `${JSON.stringify(summary, null, 2)}\n`);
  return path;
}

/** The newest `profile-*.json` of `dir` (by name: the stamp sorts by time), or null. */
export function latestProfileSummaryPath(dir) {
  if (!existsSync(dir)) return null;
  const names = readdirSync(dir)
    .filter((n) => /^profile-.*\.json$/.test(n))
    .sort();
  return names.length ? join(dir, names.at(-1)) : null;
}

export function readProfileSummary(path) {
  return { path, ...JSON.parse(readFileSync(path, 'utf8')) };
}

const keyOf = (f) => `${f.name}\u0000${f.group}`;
const round1 = (x) => Math.round(x * 10) / 10;

/**
 * Before → after for one profile (matched by transport): the `top` functions of `after` by
 * share, then those of `before`'s `top` not among them; a function is matched by name and
 * package (its line moves when code changes). Shares absent from a top-25 list are null.
 */
export function compareProfile(before, after, top = 15) {
  const b = new Map(before.functions.map((f) => [keyOf(f), f]));
  const a = new Map(after.functions.map((f) => [keyOf(f), f]));
  const rows = [];
  const seen = new Set();
  for (const f of after.functions.slice(0, top)) {
    seen.add(keyOf(f));
    const old = b.get(keyOf(f));
    rows.push({
      name: f.name,
      where: f.location || f.group,
      before: old?.share ?? null,
      after: f.share,
      change: /** @type {number | null} */ (null),
    });
  }
  for (const f of before.functions.slice(0, top)) {
    if (seen.has(keyOf(f))) continue;
    rows.push({
      name: f.name,
      where: f.location || f.group,
      before: f.share,
      after: a.get(keyOf(f))?.share ?? null,
      change: /** @type {number | null} */ (null),
    });
  }
  for (const r of rows) r.change = r.before === null || r.after === null ? null : round1(r.after - r.before);
  const bg = new Map(before.groups.map((g) => [g.group, g.share]));
  const groups = after.groups.slice(0, 10).map((g) => ({ group: g.group, before: bg.get(g.group) ?? null, after: g.share }));
  return { rows, groups };
}
