import type { Logger } from '@mqgate/rpc';
import { logUnstored, type SessionPersistence, type Unstored } from './persistence';

/** The info line a stop writes once the store answered the writes in flight at its deadline. */
export const IN_FLIGHT_SETTLED = 'gate stopped: the session-store writes in flight at stopTimeout settled';

/**
 * What a stop reports of the changes the store had not taken by stopTimeout: only what the
 * store did not acknowledge. At once (at error, logUnstored): the changes still queued for an
 * attempt, lost when the gate closes its persistence. A write in flight then (sent, not
 * answered: a stalled store) is judged when the store answers it, after stop() resolved: at
 * error if the store failed it, and one info line {@link IN_FLIGHT_SETTLED} with fields
 * `inFlight`, `stored`, `lost`. Resolves when that line is written; never rejects.
 */
export async function reportUnstoredAtStop(logger: Logger, persistence: SessionPersistence, unstored: readonly Unstored[]): Promise<void> {
  if (unstored.length === 0) return;
  const { queued, inFlight, writing } = persistence.unacknowledged();
  logUnstored(logger, queued);
  if (inFlight === 0) return;
  const failed = await writing;
  logUnstored(logger, failed);
  logger.info({ inFlight, stored: inFlight - failed.length, lost: failed.length }, IN_FLIGHT_SETTLED);
}
