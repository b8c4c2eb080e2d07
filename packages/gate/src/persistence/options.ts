import { optionChecker, RANGES } from '@mqgate/rpc/internal';
import type { StorageHandler } from '@mqgate/storage';

/** Session persistence: the StorageHandler, heartbeats and write retries. Part of GateOptions; defaults in {@link PERSISTENCE_DEFAULTS}. */
export interface PersistenceOptions {
  /**
   * Persists sessions of bound users (MemoryStorage, RedisStorage or your own). Without it
   * nothing is persisted and a reconnecting client starts with empty settings.
   */
  storage?: StorageHandler;
  /** ms between StorageHandler heartbeats of a bound session with traffic. Default 60 000 (mqant's Heartbeat). */
  heartbeatInterval?: number;
  /** Delete what is stored for a user on every unbind, not only on unbind with delete. Default false. */
  deleteOnUnbind?: boolean;
  /** ms before the first retry of a failed store write; doubles up to storageRetryMaxDelay. Default 500. */
  storageRetryDelay?: number;
  /** ms, the longest wait between retries of a failed store write. Default 30 000. */
  storageRetryMaxDelay?: number;
}

/** {@link PersistenceOptions} resolved: every default applied, every value checked. */
export type ResolvedPersistenceOptions = Required<Omit<PersistenceOptions, 'storage'>> & {
  storage: StorageHandler | undefined;
};

/** The defaults of {@link PersistenceOptions}. */
export const PERSISTENCE_DEFAULTS = {
  heartbeatInterval: 60_000,
  deleteOnUnbind: false,
  storageRetryDelay: 500,
  storageRetryMaxDelay: 30_000,
} as const;

const check = optionChecker('gate option');

/**
 * Fills in the defaults of {@link PersistenceOptions} and checks them.
 * @throws OptionError (code BAD_OPTION, a RangeError) naming the option, its range and the value.
 */
export function resolvePersistenceOptions(o: PersistenceOptions): ResolvedPersistenceOptions {
  const D = PERSISTENCE_DEFAULTS;
  return {
    storage: o.storage,
    heartbeatInterval: check('heartbeatInterval', o.heartbeatInterval ?? D.heartbeatInterval, RANGES.positive),
    deleteOnUnbind: o.deleteOnUnbind ?? D.deleteOnUnbind,
    storageRetryDelay: check('storageRetryDelay', o.storageRetryDelay ?? D.storageRetryDelay, RANGES.positive),
    storageRetryMaxDelay: check('storageRetryMaxDelay', o.storageRetryMaxDelay ?? D.storageRetryMaxDelay, RANGES.positive),
  };
}
