import type { Logger } from '@mqgate/rpc';

/**
 * A warn-level log line per kind of event, rate-limited so that a flood (ten thousand
 * slow consumers, an accept loop hitting EMFILE) writes one line per `interval` per kind,
 * not one per event. The first event of a kind is written at once; the others within the
 * interval are counted, and the next line written for that kind carries `suppressed: n`.
 *
 * `kind` is a short stable string (`slow-consumer`, `limit:maxConnectionsPerIp`, `emfile`,
 * `event-loop-stall`...): the key of the rate limit and a field of the line, so logs can be
 * filtered on it. The number of kinds is bounded by the code, never by client input: never
 * put a client id, IP or user id in `kind` (put it in `fields`).
 */
export type WarnLog = (kind: string, fields: object, msg: string) => void;

/** Default interval between two lines of one kind: 10 000 ms. */
export const WARN_LOG_INTERVAL = 10_000;

/**
 * Makes a {@link WarnLog} writing to `logger.warn`.
 *
 * @param logger where lines go (pino's API subset).
 * @param interval ms between two lines of one kind (default {@link WARN_LOG_INTERVAL}).
 * @param now the clock (ms), for tests.
 */
export function createWarnLog(logger: Logger, interval = WARN_LOG_INTERVAL, now: () => number = Date.now): WarnLog {
  const kinds = new Map<string, { last: number; suppressed: number }>();
  return (kind, fields, msg) => {
    const t = now();
    const k = kinds.get(kind);
    if (k && t - k.last < interval) {
      k.suppressed++;
      return;
    }
    const suppressed = k?.suppressed ?? 0;
    kinds.set(kind, { last: t, suppressed: 0 });
    logger.warn(suppressed > 0 ? { kind, ...fields, suppressed } : { kind, ...fields }, msg);
  };
}
