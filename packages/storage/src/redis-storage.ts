import { encodeSession, type SessionData } from '@mqgate/rpc';
import { messageOf, toBuffer } from '@mqgate/rpc/internal';
import { createRedis, DEFAULT_KEY_PREFIX, DEFAULT_REDIS_URL, quitRedis, sessionKey, sessionPrefix, type RedisClient } from '@mqgate/rpc/redis';
import { checkUserId, DEFAULT_SESSION_TTL, positiveInteger } from './internal';
import { StorageError, type StorageHandler } from './storage-handler';

/** Default key prefix of {@link RedisStorage}: `'mqgate:session:'` (the key schema's `sessionPrefix('mqgate:')`). */
export const DEFAULT_REDIS_PREFIX = sessionPrefix(DEFAULT_KEY_PREFIX);
/** Default Redis URL of {@link RedisStorage} when neither `url` nor `client` is given: `redis://127.0.0.1:6379` (the one default of @mqgate/rpc/redis). */
export { DEFAULT_REDIS_URL };

/** Options of {@link RedisStorage}. Give `url` or `client`, not both. */
export interface RedisStorageOptions {
  /**
   * Redis to connect to, e.g. `redis://:password@host:6379/0` or `rediss://…` for TLS.
   * RedisStorage creates the client and {@link RedisStorage.close} quits it.
   * Default `redis://127.0.0.1:6379`.
   */
  url?: string;
  /**
   * An existing ioredis client (`Redis` or `Cluster`) to use instead. Its own options
   * apply (`commandTimeout` below does not: give it one, or a command can wait as long as
   * the client queues it), it is never quit by `close()`, and its `error` events are left
   * to its owner. Its `keyPrefix`, if any, goes before `prefix`.
   */
  client?: RedisClient;
  /**
   * Put before the user id to make the key: key = prefix + userId (the key schema's
   * `sessionKey`). Default `"mqgate:session:"`. A Go mqant gate reading the same store must use the same keys.
   * On Redis Cluster every user is one key, so any prefix works; to put all sessions in
   * one slot instead (rarely wanted), use a hash tag such as `"{mqgate}:session:"`.
   */
  prefix?: string;
  /**
   * How long a stored session lives after its last `storage` or `heartbeat`, in ms
   * (`PX`). A positive integer; default 86_400_000 (24 h).
   */
  ttl?: number;
  /**
   * Per-command timeout, in ms, of the client RedisStorage creates (ioredis
   * `commandTimeout`): a command not answered in time rejects with a StorageError. A
   * positive integer; default 2000. Ignored with `client`.
   */
  commandTimeout?: number;
  /**
   * Called with every `error` event of the client RedisStorage creates (connection
   * refused, reset, …; they repeat while Redis is down). Default: dropped silently, so an
   * outage never crashes the process; failed operations reject with StorageError anyway.
   * Ignored with `client`.
   */
  onError?: (error: Error) => void;
}

/**
 * A {@link StorageHandler} on Redis (ioredis 5), shared by every gate that uses the same
 * Redis and prefix, so a user who reconnects to any of them gets their settings back.
 *
 * Layout: one string key per user, `prefix + userId`, holding the protobuf session bytes
 * (`encodeSession`: the `SessionImp` message a Go mqant gate's `Serializable()` writes, so
 * each can read the other's), with a TTL of `ttl` ms. Only single-key commands are used,
 * and never KEYS or SCAN, so it works on Redis Cluster and large databases:
 * - `storage`: `SET key bytes PX ttl` (atomic; a concurrent reader sees old or new bytes);
 * - `delete`: `DEL key`;
 * - `query`: `GET key` (as a Buffer; `null` when missing or expired);
 * - `heartbeat`: `PEXPIRE key ttl`; when the key is gone (reply 0), `SET key bytes PX ttl
 *   NX`, so a newer write made meanwhile by another gate is not overwritten.
 *
 * The client RedisStorage creates (from `url`) has the one connection policy of
 * @mqgate/rpc/redis (`CONNECTION_POLICY`: `maxRetriesPerRequest: 0`, `enableOfflineQueue:
 * true`, reconnect forever with a capped backoff, 50 ms doubling up to 2 s) plus the
 * `commandTimeout` variant (default 2000 ms); its `error` events go to `onError` (default:
 * ignored). A command is sent only once the connection is ready (waiting at most
 * `commandTimeout` ms for it), and commands in flight when the connection drops are
 * rejected, not resent (`autoResendUnfulfilledCommands: false`): a write that rejected
 * during an outage is never applied later, when Redis comes back, over a newer write from
 * another gate. (With ioredis's defaults it would be: a command that timed out in the
 * offline queue is still sent on reconnect.)
 *
 * Errors: every method rejects (never throws synchronously) with a {@link StorageError}
 * naming the operation and user, whose `cause` is the underlying error: for an empty user
 * id; while Redis is unreachable, after `commandTimeout` ms (e.g. `storage("u1") failed:
 * Redis not ready within 2000 ms (Redis connection: reconnecting; last error: connect
 * ECONNREFUSED 127.0.0.1:6379)`); when a command times out or its connection drops (`Command
 * timed out after 2000 ms …`, ioredis's `Reached the max retries per request limit …`); and
 * after {@link close} (`Connection is closed. …`). With a `client` of your own, its options
 * decide how long a call can wait.
 *
 * @throws TypeError from the constructor when both `url` and `client` are given;
 *   RangeError when `ttl` or `commandTimeout` is not a positive integer.
 */
export class RedisStorage implements StorageHandler {
  /** The ioredis client in use (created, or the one given). */
  readonly client: RedisClient;
  /** Key prefix: key = prefix + userId. */
  readonly prefix: string;
  /** Time to live of a stored session, in ms. */
  readonly ttl: number;
  /** Command timeout of the created client, in ms; `undefined` with a given client. */
  readonly commandTimeout: number | undefined;
  private readonly owned: boolean;
  private closing: Promise<void> | undefined;
  /** Callers waiting for the created client to be ready (woken on `ready` and `end`). */
  private readonly waiters = new Set<() => void>();
  /** Last `error` event of the created client since it was last ready. */
  private lastError: Error | undefined;

  constructor(options: RedisStorageOptions = {}) {
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.ttl = positiveInteger('ttl', options.ttl ?? DEFAULT_SESSION_TTL);
    if (options.client) {
      if (options.url !== undefined) throw new TypeError('RedisStorage: give url or client, not both');
      this.client = options.client;
      this.owned = false;
      this.commandTimeout = undefined;
    } else {
      this.commandTimeout = positiveInteger('commandTimeout', options.commandTimeout ?? 2000);
      const onError = options.onError;
      const client = createRedis(options.url ?? DEFAULT_REDIS_URL, { commandTimeout: this.commandTimeout });
      client.on('error', (error: Error) => {
        this.lastError = error;
        if (onError) {
          try {
            onError(error);
          } catch {
            // A failing listener must not turn a Redis outage into a crash.
          }
        }
      });
      const wake = () => {
        if (client.status === 'ready') this.lastError = undefined;
        for (const waiter of [...this.waiters]) waiter();
      };
      client.on('ready', wake);
      client.on('end', wake);
      this.client = client;
      this.owned = true;
    }
  }

  /** The Redis key of a user: `prefix + userId`. */
  key(userId: string): string {
    return sessionKey(this.prefix, userId);
  }

  /** `SET prefix+userId encodeSession(session) PX ttl`. */
  storage(session: SessionData): Promise<void> {
    return this.run('storage', session?.userId, async (key) => {
      const bytes = toBuffer(encodeSession(session));
      await this.whenReady();
      await this.client.set(key, bytes, 'PX', this.ttl);
    });
  }

  /** `DEL prefix+userId`; resolves whether or not the key existed. */
  delete(session: SessionData): Promise<void> {
    return this.run('delete', session?.userId, async (key) => {
      await this.whenReady();
      await this.client.del(key);
    });
  }

  /** `GET prefix+userId`: the stored bytes (a Buffer), or `null`. */
  query(userId: string): Promise<Uint8Array | null> {
    return this.run('query', userId, async (key) => {
      await this.whenReady();
      return this.client.getBuffer(key);
    });
  }

  /** `PEXPIRE prefix+userId ttl`; when the key is gone, `SET … PX ttl NX` with the session. */
  heartbeat(session: SessionData): Promise<void> {
    return this.run('heartbeat', session?.userId, async (key) => {
      const bytes = toBuffer(encodeSession(session));
      await this.whenReady();
      const extended = await this.client.pexpire(key, this.ttl);
      if (extended === 0) {
        await this.whenReady();
        await this.client.set(key, bytes, 'PX', this.ttl, 'NX');
      }
    });
  }

  /**
   * Quits the client RedisStorage created (`QUIT`, or a plain disconnect when Redis is not
   * reachable, so it never waits for an outage to end); a given client is left open.
   * Idempotent. Afterwards every method rejects with a StorageError.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = this.owned ? quitRedis(this.client) : Promise.resolve();
      for (const waiter of [...this.waiters]) waiter();
    }
    return this.closing;
  }

  private async run<T>(operation: StorageError['operation'], userId: unknown, fn: (key: string) => Promise<T>): Promise<T> {
    const id = checkUserId(operation, userId);
    if (this.closing) {
      throw new StorageError(operation, id, new Error('Connection is closed.'), 'Connection is closed. (RedisStorage was closed)');
    }
    try {
      return await fn(this.key(id));
    } catch (err) {
      throw new StorageError(operation, id, err, this.describe(err));
    }
  }

  /**
   * Resolves once the created client is ready; rejects after `commandTimeout` ms, or when
   * the client ended. A given client is used as it is.
   */
  private whenReady(): Promise<void> {
    const client = this.client;
    if (!this.owned || client.status === 'ready') return Promise.resolve();
    if (client.status === 'end') return Promise.reject(new Error('Connection is closed.'));
    const ms = this.commandTimeout as number;
    return new Promise<void>((resolve, reject) => {
      const waiter = () => {
        const closed = this.closing !== undefined || client.status === 'end';
        if (!closed && client.status !== 'ready') return;
        this.waiters.delete(waiter);
        clearTimeout(timer);
        if (closed) reject(new Error('Connection is closed.'));
        else resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new NotReadyError(`Redis not ready within ${ms} ms`));
      }, ms);
      this.waiters.add(waiter);
    });
  }

  /** What happened, for a StorageError message: the error's message plus context. */
  private describe(err: unknown): string {
    let message = messageOf(err);
    if (message === 'Command timed out' && this.commandTimeout !== undefined) {
      message = `Command timed out after ${this.commandTimeout} ms`;
    }
    const lastError = this.lastError && this.client.status !== 'ready' ? `; last error: ${this.lastError.message}` : '';
    return `${message} (Redis connection: ${this.client.status}${lastError})`;
  }
}

/** The created client did not become ready within `commandTimeout` ms. */
class NotReadyError extends Error {
  override name = 'NotReadyError';
}
