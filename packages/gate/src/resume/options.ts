import { getHeapStatistics } from 'node:v8';
import { optionChecker, RANGES } from '@mqgate/rpc/internal';

/** Resume: how long a dropped bound session is kept detached, and what it holds. Part of GateOptions; defaults in {@link RESUME_DEFAULTS}. */
export interface ResumeOptions {
  /**
   * ms a bound session whose connection dropped (no clean DISCONNECT) is kept detached for a
   * resume (`gate/HD_resume` with its token); an MQTT 5 client's Session Expiry
   * Interval, capped by this, wins. 0 turns resume off (no tokens either). At most 2 147 483 647 (Node's longest timer). Default 120 000.
   */
  resumeWindow?: number;
  /** Pushes kept per detached session; past it the oldest are dropped and counted (`lost`). Default 50. */
  resumeBufferMessages?: number;
  /** Bytes of pushes kept per detached session (bodies + topics + 64 each); past it the oldest are dropped. Default 65 536. */
  resumeBufferBytes?: number;
  /**
   * Detached sessions this gate holds at once; at the cap the oldest one is dropped (its
   * window ends early: freed, its user-index entry removed, counted in
   * `mqgate_detached_dropped_total`, a rate-limited warn `limit:maxDetached`). Each holds
   * up to resumeBufferBytes of pushes (at the defaults 10 000 × 64 KiB ≈ 655 MB), plus the
   * QoS 1 pushes its client had not acknowledged (opt-in, bounded by maxBufferedBytes each).
   * 0 = no cap. Default 10 000.
   */
  maxDetached?: number;
  /**
   * Bytes all detached sessions of the gate hold at once, their missed pushes and the QoS 1
   * pushes their clients had not acknowledged (bodies + topics + 64 each; a broadcast's Buffer
   * counts once per session). Past it the oldest pushes of the oldest detached sessions are
   * dropped first until the total is back under (the session itself stays: its resume reports
   * them in `lost`; a rate-limited warn `limit:maxDetachedBytesTotal`; `gate.stats()`'s
   * `detachedBytes` and `detachedEvicted`). `0` or `false` turns it off. Default: an eighth of
   * V8's heap limit (`v8.getHeapStatistics().heap_size_limit / 8`, about 512 MiB on a 4 GiB
   * heap), half of maxBufferedBytesTotal's default.
   * @throws OptionError (BAD_OPTION, a RangeError) for a negative or non-integer value.
   */
  maxDetachedBytesTotal?: number | false;
}

/** {@link ResumeOptions} resolved: every default applied, every value checked. */
export type ResolvedResumeOptions = Required<Omit<ResumeOptions, 'maxDetachedBytesTotal'>> & {
  /** Bytes; 0 = off. */
  maxDetachedBytesTotal: number;
};

/** The defaults of {@link ResumeOptions}. */
export const RESUME_DEFAULTS = {
  resumeWindow: 120_000,
  resumeBufferMessages: 50,
  resumeBufferBytes: 65_536,
  maxDetached: 10_000,
  maxDetachedBytesTotal: Math.floor(getHeapStatistics().heap_size_limit / 8),
} as const;

const check = optionChecker('gate option');

/**
 * Fills in the defaults of {@link ResumeOptions} and checks them.
 * @throws OptionError (code BAD_OPTION, a RangeError) naming the option, its range and the value.
 */
export function resolveResumeOptions(o: ResumeOptions): ResolvedResumeOptions {
  const D = RESUME_DEFAULTS;
  return {
    resumeWindow: check('resumeWindow', o.resumeWindow ?? D.resumeWindow, RANGES.timerMs),
    resumeBufferMessages: check('resumeBufferMessages', o.resumeBufferMessages ?? D.resumeBufferMessages, RANGES.count),
    resumeBufferBytes: check('resumeBufferBytes', o.resumeBufferBytes ?? D.resumeBufferBytes, RANGES.count),
    maxDetached: check('maxDetached', o.maxDetached ?? D.maxDetached, RANGES.count),
    maxDetachedBytesTotal:
      o.maxDetachedBytesTotal === false ? 0 : check('maxDetachedBytesTotal', o.maxDetachedBytesTotal ?? D.maxDetachedBytesTotal, RANGES.count),
  };
}
