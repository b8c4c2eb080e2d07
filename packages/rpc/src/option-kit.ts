// The one validation kit of every component's options (gate, transports, storage, the mqgate
// command): named numeric ranges, a checker that fills in the default and throws a coded error.
// A leaf of the import graph.

/**
 * A bad option value. Code `BAD_OPTION` (see ERROR_CODES); a RangeError, as option errors
 * always were, so `toThrow(RangeError)` and `instanceof RangeError` still hold. The message
 * names the component, the option, the rule and the value.
 */
export class OptionError extends RangeError {
  readonly code = 'BAD_OPTION';
  constructor(message: string) {
    super(message);
    this.name = 'OptionError';
  }
}

/** A numeric range: `min` (`exclusiveMin`: above it, not at it), `max`, whole numbers only when `integer`. */
export interface OptionRange {
  readonly min: number;
  readonly exclusiveMin?: boolean;
  readonly max?: number;
  readonly integer?: boolean;
}

/** Node's longest timer, ms (2^31 - 1): a longer delay fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** The ranges options use, by name. */
export const RANGES = Object.freeze({
  /** Any number above 0 (ms, bytes, counts that cannot be 0). */
  positive: { min: 0, exclusiveMin: true },
  /** A whole number ≥ 1. */
  positiveInteger: { min: 1, integer: true },
  /** A whole number ≥ 0 (0 usually means "no limit" or "off"). */
  count: { min: 0, integer: true },
  /** A TCP port, 0 picking a free one. */
  port: { min: 0, max: 65_535, integer: true },
  /** A 16-bit MQTT field (packet identifiers, Topic Alias Maximum, keepalive). */
  uint16: { min: 0, max: 0xffff, integer: true },
  /** An MQTT packet identifier, 1..65 535 (MQTT-2.3.1-1): QoS 1 / 2 windows. */
  packetIdentifier: { min: 1, max: 0xffff, integer: true },
  /** An MQTT packet size, bytes: at most 268 435 455 (the Remaining Length's maximum, MQTT 2.2.3). */
  packetSize: { min: 1, max: 268_435_455, integer: true },
  /** ms of a timer, 0 = off. */
  timerMs: { min: 0, max: MAX_TIMER_MS, integer: true },
} satisfies Record<string, OptionRange>);

function describeRange(r: OptionRange): string {
  if (r.min === 0 && r.max === 65_535 && r.integer) return 'a port from 0 to 65535';
  if (r.exclusiveMin && r.min === 0 && !r.integer) return 'a positive number';
  const low = r.integer ? `an integer ≥ ${r.exclusiveMin ? r.min + 1 : r.min}` : `a number ${r.exclusiveMin ? '>' : '≥'} ${r.min}`;
  return r.max === undefined ? low : `${low} and at most ${r.max}`;
}

/** True when `v` is a number inside `r`. */
export function inRange(v: unknown, r: OptionRange): v is number {
  if (typeof v !== 'number' || !Number.isFinite(v)) return false;
  if (r.integer && !Number.isInteger(v)) return false;
  if (r.exclusiveMin ? v <= r.min : v < r.min) return false;
  return r.max === undefined || v <= r.max;
}

/**
 * A checker for one component's options: `check(name, value ?? default, range)` returns the
 * value or throws an {@link OptionError} `<component> <name> must be <range>, got <value>`.
 * `component` is how the message names the owner, e.g. `gate option`, `NatsTransport:`.
 */
export function optionChecker(component: string): (name: string, value: unknown, range: OptionRange) => number {
  return (name, value, range) => {
    if (inRange(value, range)) return value;
    const aboveMax = inRange(value, { ...range, max: undefined });
    const rule = aboveMax ? `at most ${range.max}` : describeRange(range);
    throw new OptionError(`${component} ${name} must be ${rule}, got ${String(value)}`);
  };
}

/** A token bucket: `perSecond` refill, `burst` held at most. */
export interface TokenBucket {
  perSecond: number;
  burst: number;
}

/**
 * A token-bucket option: `false` (off), or `{ perSecond > 0, burst ≥ 1 }` with burst defaulting
 * to twice perSecond; undefined gives a copy of `fallback`.
 * @throws OptionError (a RangeError) naming `<component> <name>` otherwise.
 */
export function tokenBucket(
  component: string,
  name: string,
  v: Partial<TokenBucket> | false | undefined,
  fallback: TokenBucket | false,
): TokenBucket | false {
  if (v === undefined) return fallback && { ...fallback };
  if (v === false) return false;
  if (typeof v !== 'object' || v === null) throw new OptionError(`${component} ${name} must be { perSecond, burst } or false, got ${String(v)}`);
  const check = optionChecker(component);
  const perSecond = check(`${name}.perSecond`, v.perSecond, RANGES.positive);
  const burst = check(`${name}.burst`, v.burst ?? 2 * perSecond, RANGES.positive);
  if (burst < 1) throw new OptionError(`${component} ${name}.burst must be at least 1, got ${burst}`);
  return { perSecond, burst };
}
