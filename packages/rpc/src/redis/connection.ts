import { Redis, type Cluster, type RedisOptions } from 'ioredis';

/**
 * Every Redis connection mqgate creates comes from here, with one policy
 * ({@link CONNECTION_POLICY}), and is closed with {@link quitRedis}. A connection you pass
 * in yourself (a `redis` / `client` option) keeps its own options.
 */

/** A standalone client or a Cluster: what every Redis component accepts. */
export type RedisClient = Redis | Cluster;

/** Redis used when no URL is given: `redis://127.0.0.1:6379`. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Reconnect / retry delay in ms before attempt `times` (1, 2, …): 50 ms doubling, capped at 2 000 ms. */
export function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(Math.max(times - 1, 0), 6), 2000);
}

/**
 * The one connection policy: fail fast, never replay, reconnect forever.
 * - `maxRetriesPerRequest: 0`, `autoResendUnfulfilledCommands: false`: commands in flight
 *   or queued when a connection drops are rejected at once (ioredis `MaxRetriesPerRequestError`,
 *   "Reached the max retries per request limit (which is 0)"), never resent. A request is
 *   delivered at most once, a blocked read is simply reissued, and a write that rejected
 *   during an outage is never applied later over a newer one.
 * - `enableOfflineQueue: true`: a command issued while (re)connecting waits for the
 *   connection (until the next failed attempt); the components wait for `ready` themselves.
 * - `retryStrategy`: {@link reconnectDelay}, forever (50 ms doubling, capped at 2 s).
 * - `disconnectTimeout: 300` ms: how long a disconnect waits for a half-closed socket before
 *   destroying it (ioredis: 2 s, kept even for a socket already gone, which holds the
 *   process that long after close()).
 */
export const CONNECTION_POLICY: Readonly<RedisOptions> = Object.freeze({
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  enableOfflineQueue: true,
  retryStrategy: reconnectDelay,
  disconnectTimeout: 300,
});

/** What a component may add to {@link CONNECTION_POLICY}; nothing else differs. */
export interface ConnectionVariant {
  /**
   * Auto-pipelining (ioredis `enableAutoPipelining`): many small commands of many callers
   * share one round trip. For a shared command connection (RedisUserIndex: {@link PIPELINED});
   * off for a subscriber, a blocking connection and RedisTransport's command connection
   * (which batches the writes of a turn itself, {@link corkedWrite}).
   * Default false.
   */
  autoPipelining?: boolean;
  /**
   * Per-command timeout, ms (ioredis `commandTimeout`): a command not answered in time
   * rejects with "Command timed out". For callers that must answer within a bound whatever
   * Redis does (RedisStorage). A positive integer.
   * Default none (a command waits for its reply, or for the connection to drop).
   */
  commandTimeout?: number;
}

/** The variant of a shared command connection: {@link CONNECTION_POLICY} plus auto-pipelining. */
export const PIPELINED: Readonly<ConnectionVariant> = Object.freeze({ autoPipelining: true });

/**
 * A new client with {@link CONNECTION_POLICY} (plus `variant`), connecting at once.
 * @param url e.g. `redis://:password@host:6379/0` (`rediss://` for TLS). Default {@link DEFAULT_REDIS_URL}.
 */
export function createRedis(url: string = DEFAULT_REDIS_URL, variant: ConnectionVariant = {}): Redis {
  const options: RedisOptions = { ...CONNECTION_POLICY, enableAutoPipelining: variant.autoPipelining ?? false };
  if (variant.commandTimeout !== undefined) options.commandTimeout = variant.commandTimeout;
  return new Redis(url, options);
}

/**
 * A second connection to the same Redis as `conn`, for a subscriber or a blocking read:
 * without auto-pipelining; a standalone duplicate gets {@link CONNECTION_POLICY}, a Cluster
 * duplicate keeps the Cluster's own options.
 */
export function duplicateRedis(conn: RedisClient): RedisClient {
  if (isCluster(conn)) return conn.duplicate(undefined, { enableAutoPipelining: false });
  return conn.duplicate({ ...CONNECTION_POLICY, enableAutoPipelining: false, lazyConnect: false });
}

interface Corkable {
  cork(): void;
  uncork(): void;
}

/** The socket of a standalone, not auto-pipelined `client`, if it has one yet. */
function corkable(client: RedisClient): Corkable | undefined {
  if (isCluster(client) || client.options.enableAutoPipelining) return undefined;
  const stream = (client as unknown as { stream?: Partial<Corkable> }).stream;
  return stream && typeof stream.cork === 'function' && typeof stream.uncork === 'function' ? (stream as Corkable) : undefined;
}

/**
 * Runs `write` with the socket of a standalone, not auto-pipelined `client` corked (Node
 * `socket.cork()`), so the commands it sends leave in one socket write when it returns, without
 * auto-pipelining's Pipeline object per batch. The callers gather a turn's commands first
 * (caller.ts, consumer.ts: flushed in `setImmediate`). No-op cork for a Cluster, an
 * auto-pipelined client or one without a socket yet.
 */
export function corkedWrite(client: RedisClient, write: () => void): void {
  const stream = corkable(client);
  stream?.cork();
  try {
    write();
  } finally {
    stream?.uncork();
  }
}

/** True for an ioredis Cluster. */
export function isCluster(conn: RedisClient): conn is Cluster {
  return (conn as { isCluster?: boolean }).isCluster === true;
}

/**
 * Closes an ioredis client without hanging during an outage: QUIT when it is ready (bounded
 * by `stepMs`; a timeout or failure falls back to disconnect), disconnect otherwise; then
 * waits at most `stepMs` for `end`. While reconnecting ioredis only cancels the next attempt
 * and emits nothing more, so it returns at once. Never rejects.
 * @param stepMs bound of each step, ms. Default 1 000.
 */
export async function quitRedis(client: RedisClient, stepMs = 1_000): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'reconnecting' || client.status === 'wait') {
    client.disconnect();
    return;
  }
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const timeout = () => new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), stepMs)));
  if (client.status === 'ready') {
    const outcome = await Promise.race([client.quit().catch(() => 'failed' as const), timeout()]);
    clearTimeout(timer);
    if (outcome === 'timeout' || outcome === 'failed') client.disconnect();
  } else {
    client.disconnect();
  }
  await Promise.race([ended, timeout()]);
  clearTimeout(timer);
}
