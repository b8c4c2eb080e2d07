// @ts-check
// What ran in each event-loop stall: the samples of a V8 .cpuprofile (node --cpu-prof) that
// fall in a stall window (gate.mjs keeps them in µs of the monotonic clock, the profile's
// clock), by self time and by inclusive time per function. A stall whose samples are few is
// the host not running the process (the profiler's thread is not run either).
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * @param {{ nodes: any[], samples: number[], timeDeltas: number[], startTime: number }} profile
 * @param {{ fromUs: number, toUs: number, at: number, late: number, cpu: number }[]} windows
 * @param {string} root paths are shown relative to it
 * @param {number} [top] functions listed per window
 */
export function stallProfiles(profile, windows, root, top = 12) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  /** @type {Map<number, number>} */
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const times = [];
  let t = profile.startTime;
  for (const d of profile.timeDeltas) times.push((t += d));
  const label = (n) => {
    const cf = n.callFrame;
    let file = cf.url;
    try {
      if (file.startsWith('file://')) file = relative(root, fileURLToPath(file));
    } catch {
      /* keep */
    }
    return `${cf.functionName || '(anonymous)'}${file ? ` ${file}:${cf.lineNumber + 1}` : ''}`;
  };
  const share = (n, all) => Math.round((n / Math.max(1, all)) * 100);
  return windows.map((w) => {
    const self = new Map();
    const incl = new Map();
    let samples = 0;
    let idle = 0;
    let sampledUs = 0;
    for (let i = 0; i < times.length; i++) {
      if (times[i] < w.fromUs || times[i] > w.toUs) continue;
      const node = byId.get(profile.samples[i]);
      if (node.callFrame.functionName === '(idle)') {
        idle++;
        continue;
      }
      samples++;
      sampledUs += i > 0 ? Math.min(times[i] - times[i - 1], 2000) : 0;
      const k = label(node);
      self.set(k, (self.get(k) ?? 0) + 1);
      const seen = new Set();
      for (let id = parent.get(node.id); id !== undefined; id = parent.get(id)) {
        const f = label(byId.get(id));
        if (f === '(root)' || seen.has(f)) continue;
        seen.add(f);
        incl.set(f, (incl.get(f) ?? 0) + 1);
      }
      if (!seen.has(k)) incl.set(k, (incl.get(k) ?? 0) + 1);
    }
    const list = (m) =>
      [...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([f, n]) => `${String(share(n, samples)).padStart(3)}% ${f}`);
    return {
      stall: `${w.at.toFixed(2)}s: ${Math.round(w.late)} ms late, ${Math.round(w.cpu)} ms CPU, ${samples} busy samples (~${Math.round(sampledUs / 1000)} ms), ${idle} idle`,
      self: list(self),
      inclusive: list(incl),
    };
  });
}
