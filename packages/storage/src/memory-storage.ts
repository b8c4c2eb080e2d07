import { encodeSession, type SessionData } from '@mqgate/rpc';
import { checkUserId, DEFAULT_SESSION_TTL, positiveInteger } from './internal';
import { StorageError, type StorageHandler } from './storage-handler';

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * How long a stored session lives after its last `storage` or `heartbeat`, in ms.
   * A positive integer; default 86_400_000 (24 h).
   */
  ttl?: number;
  /**
   * How often expired entries are swept away, in ms. A positive integer; default
   * `min(ttl, 60_000)`. Expired entries are never returned in between: `query` checks the
   * expiry itself; the sweep only frees their memory.
   */
  sweepInterval?: number;
  /**
   * Most entries held; storing one more drops the entry written or heartbeaten longest ago
   * (counted in {@link MemoryStorage.evicted}), so an embedded default store cannot grow
   * without bound. A positive integer; default 100_000: a gate's worth of users (about
   * 100 MB at 1 KiB of settings each), far above what a demo or test holds.
   */
  maxEntries?: number;
}

/** Default {@link MemoryStorageOptions.maxEntries}. */
export const DEFAULT_MAX_ENTRIES = 100_000;

interface Entry {
  bytes: Uint8Array;
  /** `performance.now()` time, in ms, from which the entry is expired. */
  expiresAt: number;
}

/**
 * A {@link StorageHandler} that keeps sessions in this process's memory: for tests, demos
 * and single-gate deployments that accept losing sessions on restart. Gates in other
 * processes do not see them (use {@link RedisStorage} for that).
 *
 * Same expiry semantics as RedisStorage: an entry lives `ttl` ms after its last `storage`
 * or `heartbeat`; an expired entry is never returned (`query` drops it and resolves
 * `null`); `heartbeat` on a missing or expired entry stores the given session again. Time is
 * measured with a monotonic clock, so wall-clock jumps do not expire or revive entries.
 *
 * Stored bytes are copies: mutating the array returned by `query`, or reusing the session,
 * never changes what is stored. An unref'd timer sweeps expired entries every
 * `sweepInterval` ms (it never keeps the process alive); {@link close} stops it.
 *
 * Every method rejects with a {@link StorageError} (never throws synchronously) when the
 * session's `userId` (or the queried user id) is `""`, or when the session cannot be encoded.
 */
export class MemoryStorage implements StorageHandler {
  /** Time to live of an entry, in ms. */
  readonly ttl: number;
  /** Sweep period, in ms. */
  readonly sweepInterval: number;
  /** Most entries held (oldest out first). */
  readonly maxEntries: number;
  /** Entries dropped because the store was full, since it was made. */
  evicted = 0;
  private readonly entries = new Map<string, Entry>();
  private sweepTimer: NodeJS.Timeout | undefined;

  /** @throws RangeError when `ttl`, `sweepInterval` or `maxEntries` is not a positive integer. */
  constructor(options: MemoryStorageOptions = {}) {
    this.ttl = positiveInteger('ttl', options.ttl ?? DEFAULT_SESSION_TTL);
    this.maxEntries = positiveInteger('maxEntries', options.maxEntries ?? DEFAULT_MAX_ENTRIES);
    this.sweepInterval = positiveInteger('sweepInterval', options.sweepInterval ?? Math.min(this.ttl, 60_000));
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepInterval);
    this.sweepTimer.unref();
  }

  /**
   * Number of entries held, expired ones not yet swept included (for tests and metrics).
   */
  get size(): number {
    return this.entries.size;
  }

  /** Stores a copy of `encodeSession(session)` under `session.userId` for `ttl` ms. */
  async storage(session: SessionData): Promise<void> {
    const userId = checkUserId('storage', session?.userId);
    this.put(userId, { bytes: encode('storage', session), expiresAt: now() + this.ttl });
  }

  /** Removes the user's entry; resolves whether or not there was one. */
  async delete(session: SessionData): Promise<void> {
    this.entries.delete(checkUserId('delete', session?.userId));
  }

  /** Resolves a copy of the stored bytes, or `null` when none are stored or they expired. */
  async query(userId: string): Promise<Uint8Array | null> {
    checkUserId('query', userId);
    const entry = this.live(userId);
    return entry ? new Uint8Array(entry.bytes) : null;
  }

  /**
   * Restarts the entry's `ttl`; when the entry is missing or expired, stores
   * `encodeSession(session)` again.
   */
  async heartbeat(session: SessionData): Promise<void> {
    const userId = checkUserId('heartbeat', session?.userId);
    const entry = this.live(userId);
    if (entry) {
      entry.expiresAt = now() + this.ttl;
      this.put(userId, entry);
    } else this.put(userId, { bytes: encode('heartbeat', session), expiresAt: now() + this.ttl });
  }

  /** Sets the entry as the newest (Map order = write order), dropping the oldest past maxEntries. */
  private put(userId: string, entry: Entry): void {
    this.entries.delete(userId);
    this.entries.set(userId, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.evicted++;
    }
  }

  /**
   * Stops the periodic sweep. Idempotent. The store stays usable (expired entries are still
   * never returned) but no longer frees expired entries that nobody queries.
   */
  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** Removes every expired entry. Called by the periodic sweep. */
  sweep(): void {
    const t = now();
    for (const [userId, entry] of this.entries) {
      if (entry.expiresAt <= t) this.entries.delete(userId);
    }
  }

  /** The unexpired entry of a user; drops an expired one. */
  private live(userId: string): Entry | undefined {
    const entry = this.entries.get(userId);
    if (!entry) return undefined;
    if (entry.expiresAt <= now()) {
      this.entries.delete(userId);
      return undefined;
    }
    return entry;
  }
}

function now(): number {
  return performance.now();
}

function encode(operation: StorageError['operation'], session: SessionData): Uint8Array {
  try {
    // encodeSession returns a fresh buffer; copy anyway into an exact-size array so the
    // store never shares memory with a pooled buffer.
    return new Uint8Array(encodeSession(session));
  } catch (err) {
    throw new StorageError(operation, session.userId, err);
  }
}
