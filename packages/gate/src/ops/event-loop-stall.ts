import { performance } from 'node:perf_hooks';
import type { WarnLog } from './warn-log';

/** A stall longer than this, in ms, is logged at warn: 1 000 ms (every timer, keepalive and reply waited that long). */
export const EVENT_LOOP_STALL_MS = 1000;

/** ms between two checks: short enough that a stall just over {@link EVENT_LOOP_STALL_MS} is seen whole. */
const CHECK_PERIOD_MS = 100;

/** CPU ms (user + system) this process has used so far, all its threads. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Watches the event loop for stalls (a timer drift check, unref'd: it never keeps the
 * process alive): when a check runs more than `threshold` ms later than due, writes one warn
 * line `event-loop-stall` with `stalledMs` and `cpuMs`, the CPU ms the process used over
 * that interval (user + system, every thread: GC and libuv helpers too), through the
 * rate-limited {@link WarnLog}. `cpuMs` tells the two causes apart: near `stalledMs`, the
 * gate's own work held the loop (a handler, a backlog); far below it, the host did not run
 * the process (an overloaded or throttled machine, a paused VM). Returns the function that
 * stops watching.
 *
 * @param warn the gate's rate-limited warn log.
 * @param threshold ms of delay that counts as a stall (default {@link EVENT_LOOP_STALL_MS}).
 */
export function watchEventLoop(warn: WarnLog, threshold = EVENT_LOOP_STALL_MS): () => void {
  let last = performance.now();
  let lastCpu = cpuMs();
  const timer = setInterval(() => {
    const now = performance.now();
    const cpu = cpuMs();
    const late = now - last - CHECK_PERIOD_MS;
    const used = cpu - lastCpu;
    last = now;
    lastCpu = cpu;
    if (late > threshold) {
      const stalledMs = Math.round(late);
      warn(
        'event-loop-stall',
        { stalledMs, cpuMs: Math.round(used) },
        `event loop blocked for ${stalledMs} ms (${Math.round(used)} ms of CPU meanwhile)`,
      );
    }
  }, CHECK_PERIOD_MS);
  timer.unref();
  return () => clearInterval(timer);
}
