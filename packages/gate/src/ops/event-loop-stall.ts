import { performance } from 'node:perf_hooks';
import type { WarnLog } from './warn-log';

/** A stall longer than this, in ms, is logged at warn: 1 000 ms (every timer, keepalive and reply waited that long). */
export const EVENT_LOOP_STALL_MS = 1000;

/** ms between two checks: short enough that a stall just over {@link EVENT_LOOP_STALL_MS} is seen whole. */
const CHECK_PERIOD_MS = 100;

/**
 * Watches the event loop for stalls (a timer drift check, unref'd: it never keeps the
 * process alive): when a check runs more than `threshold` ms later than due, writes one warn
 * line `event-loop-stall` with `stalledMs` (through the rate-limited {@link WarnLog}).
 * Returns the function that stops watching.
 *
 * @param warn the gate's rate-limited warn log.
 * @param threshold ms of delay that counts as a stall (default {@link EVENT_LOOP_STALL_MS}).
 */
export function watchEventLoop(warn: WarnLog, threshold = EVENT_LOOP_STALL_MS): () => void {
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - CHECK_PERIOD_MS;
    last = now;
    if (late > threshold) warn('event-loop-stall', { stalledMs: Math.round(late) }, `event loop blocked for ${Math.round(late)} ms`);
  }, CHECK_PERIOD_MS);
  timer.unref();
  return () => clearInterval(timer);
}
