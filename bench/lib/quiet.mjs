// @ts-check
// Other processes on the machine: how much CPU they use, and the wait before each scenario
// until they are quiet (within a budget per scenario and per run).
import { sleep } from './common.mjs';
import { machineBusySeconds, ourCpuSeconds } from './proc.mjs';

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

/**
 * A `waitQuiet()` for one run: it waits (at most `perScenarioMs` each time, `totalMs` over the
 * run) until other processes use < 0.2 cores, and returns what it saw (null when disabled).
 */
export function quietWaiter({ perScenarioMs, totalMs }) {
  let budget = totalMs;
  return async function waitQuiet() {
    if (perScenarioMs <= 0) return null;
    const t0 = Date.now();
    let seen = await foreignCores(500);
    while (seen !== null && seen >= 0.2 && budget > 0 && Date.now() - t0 < perScenarioMs) {
      seen = await foreignCores(1000);
      budget -= 1000;
    }
    return { foreignCores: seen === null ? null : Math.round(seen * 100) / 100, waitedMs: Date.now() - t0 };
  };
}
