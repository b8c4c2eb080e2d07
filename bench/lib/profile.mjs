// @ts-check
// Self time by function (and by package) from a V8 .cpuprofile (node --cpu-prof).
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

function where(url, root) {
  if (!url) return '';
  if (url.startsWith('node:')) return url;
  let p = url;
  try {
    if (url.startsWith('file://')) p = fileURLToPath(url);
  } catch {
    /* keep */
  }
  return relative(root, p);
}

function groupOf(file, fn) {
  if (!file) return fn.startsWith('(') ? fn : '(native / V8)';
  if (file.startsWith('node:')) return 'node core';
  const m = /^packages\/([^/]+)\//.exec(file);
  if (m) return `@mqgate/${m[1]}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
  if (nm) return nm[1];
  if (file.startsWith('bench/')) return 'bench server script';
  return 'other';
}

export function analyzeProfile(profile, root) {
  const counts = new Map();
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  const total = profile.samples.length;
  const durationMs = (profile.endTime - profile.startTime) / 1000;
  const byFn = new Map();
  const byGroup = new Map();
  let idle = 0;
  for (const node of profile.nodes) {
    const n = counts.get(node.id) ?? 0;
    if (!n) continue;
    const cf = node.callFrame;
    const name = cf.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += n;
      continue;
    }
    const file = where(cf.url, root);
    const key = `${name}\u0000${file}:${cf.lineNumber + 1}`;
    const e = byFn.get(key) ?? { name, location: file ? `${file}:${cf.lineNumber + 1}` : '', group: groupOf(file, name), samples: 0 };
    e.samples += n;
    byFn.set(key, e);
    const g = groupOf(file, name);
    byGroup.set(g, (byGroup.get(g) ?? 0) + n);
  }
  const busy = total - idle;
  const pct = (n) => Math.round((n / Math.max(1, busy)) * 1000) / 10;
  return {
    durationMs: Math.round(durationMs),
    samples: total,
    busyShare: Math.round((busy / Math.max(1, total)) * 1000) / 10,
    functions: [...byFn.values()]
      .sort((a, b) => b.samples - a.samples)
      .slice(0, 25)
      .map((e) => ({ ...e, share: pct(e.samples) })),
    groups: [...byGroup.entries()].sort((a, b) => b[1] - a[1]).map(([group, n]) => ({ group, share: pct(n) })),
  };
}
