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
}

/** {@link ResumeOptions} resolved: every default applied, every value checked. */
export type ResolvedResumeOptions = Required<ResumeOptions>;

/** The defaults of {@link ResumeOptions}. */
export const RESUME_DEFAULTS = {
  resumeWindow: 120_000,
  resumeBufferMessages: 50,
  resumeBufferBytes: 65_536,
  maxDetached: 10_000,
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
  };
}
