import { silentLogger, type Logger } from '../logger';
import type { RedisClient } from './connection';
import { DEFAULT_RPC_PREFIX } from './keys';
import { optionChecker, RANGES } from '../option-kit';

const check = optionChecker('RedisTransport:');
/** A positive number of ms (or a count): the kit's check with the transport's name. */
const positive = (name: string, value: number): number => check(name, value, RANGES.positive);

/** Options of {@link RedisTransport}. Give `url` or `redis`, not both. Defaults: {@link TRANSPORT_DEFAULTS}. */
export interface RedisTransportOptions {
  /**
   * Redis to connect to, e.g. `redis://:password@host:6379/0` (`rediss://` for TLS). The
   * transport creates its connections with the one connection policy (connection.ts: a
   * command connection whose writes of one turn are sent together (connection.ts `corkedWrite`), a subscriber, one blocking connection per served
   * server) and quits them on {@link RedisTransport.close}.
   * Default `redis://127.0.0.1:6379`.
   */
  url?: string;
  /**
   * An existing ioredis client (`Redis` or `Cluster`) to send commands on; it is never quit
   * and its `error` events are left to its owner. The subscriber and blocking connections are
   * `duplicate()`s of it (closed by the transport). Leave its `enableAutoPipelining` off (the
   * transport then batches the writes of a tick itself, which is faster). Its `keyPrefix`, if any, goes before `prefix` (channel names get none).
   * Default none (a client is created from `url`).
   */
  redis?: RedisClient;
  /** Put before every key and channel name (keys.ts). Default `'mqgate:'`. */
  prefix?: string;
  /** Call timeout, ms, when a call gives none (mqant's RPCExpired). Positive. Default 10 000. */
  defaultTimeout?: number;
  /** How long a registry entry lives without a refresh, ms (mqant: 20 s). Positive. Default 20 000. */
  registryTtl?: number;
  /**
   * How often, ms, each server refreshes its registry entry and each transport re-reads
   * the registry (mqant: 10 s). Positive and below `registryTtl`.
   * Default 10 000, or half of `registryTtl` (rounded down) when that is shorter.
   */
  registryInterval?: number;
  /**
   * Calls one server runs at once. At this many it stops taking requests off its lists
   * until one finishes, so work queued for its module type goes to the other servers.
   * A positive integer.
   * Default 256.
   */
  maxConcurrent?: number;
  /**
   * How often, ms, a transport that serves publishes the heartbeat of its servers (one
   * Pub/Sub message naming them, on `<prefix>registry:heartbeat`; only servers whose
   * blocking read is healthy are named). Positive and below `heartbeatTimeout`.
   * Default 250, or a quarter of `heartbeatTimeout` (rounded down) when that is shorter.
   */
  heartbeatInterval?: number;
  /**
   * A server that advertises heartbeats (meta `heartbeat`) and is not heard from for this
   * long, ms, is taken as dead: it leaves {@link RedisTransport.servers} (a `serverLeft`
   * event), new calls to it reject with NoServerError at once, and calls in flight to it
   * reject with ServerLostError (code `NO_SERVER`) instead of waiting for their deadlines.
   * Judged only while this transport's own subscriber is connected. It comes back with its
   * next heartbeat. Positive, above `heartbeatInterval`, not above `registryTtl`.
   * Default 1 000, or `registryTtl` when that is shorter.
   */
  heartbeatTimeout?: number;
  /** Where connection trouble is reported (once per outage, not per message). Default silent. */
  logger?: Logger;
}

/** The defaults of {@link RedisTransportOptions} (`registryInterval`'s depends on `registryTtl`). */
export const TRANSPORT_DEFAULTS = Object.freeze({
  prefix: DEFAULT_RPC_PREFIX,
  defaultTimeout: 10_000,
  registryTtl: 20_000,
  /** The default `registryInterval` for a `registryTtl`, ms. */
  registryInterval: (registryTtl: number): number => Math.min(10_000, Math.floor(registryTtl / 2)),
  maxConcurrent: 256,
  heartbeatInterval: 250,
  /** The default `heartbeatTimeout` for a `registryTtl`, ms. */
  heartbeatTimeout: (registryTtl: number): number => Math.min(1_000, registryTtl),
  logger: silentLogger as Logger,
});

/** {@link RedisTransportOptions} with every default applied and checked (`url` / `redis` left as given). */
export interface ResolvedTransportOptions {
  prefix: string;
  defaultTimeout: number;
  registryTtl: number;
  registryInterval: number;
  maxConcurrent: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  logger: Logger;
}

/**
 * Applies the defaults and checks the values.
 * @throws TypeError when both `url` and `redis` are given; RangeError for a non-positive
 *   `defaultTimeout`, `registryTtl`, `registryInterval` or `maxConcurrent`, a fractional
 *   `maxConcurrent`, `registryInterval >= registryTtl`, a non-positive `heartbeatInterval`
 *   or `heartbeatTimeout`, `heartbeatInterval >= heartbeatTimeout` or `heartbeatTimeout > registryTtl`.
 */
export function resolveTransportOptions(options: RedisTransportOptions): ResolvedTransportOptions {
  const defaultTimeout = positive('defaultTimeout', options.defaultTimeout ?? TRANSPORT_DEFAULTS.defaultTimeout);
  const registryTtl = positive('registryTtl', options.registryTtl ?? TRANSPORT_DEFAULTS.registryTtl);
  const registryInterval = positive('registryInterval', options.registryInterval ?? TRANSPORT_DEFAULTS.registryInterval(registryTtl));
  const maxConcurrent = positive('maxConcurrent', options.maxConcurrent ?? TRANSPORT_DEFAULTS.maxConcurrent);
  if (!Number.isInteger(maxConcurrent)) throw new RangeError(`RedisTransport: maxConcurrent must be an integer, got ${maxConcurrent}`);
  if (registryInterval >= registryTtl) {
    throw new RangeError(`RedisTransport: registryInterval (${registryInterval} ms) must be below registryTtl (${registryTtl} ms)`);
  }
  const heartbeatTimeout = positive('heartbeatTimeout', options.heartbeatTimeout ?? TRANSPORT_DEFAULTS.heartbeatTimeout(registryTtl));
  const heartbeatInterval = positive(
    'heartbeatInterval',
    options.heartbeatInterval ?? Math.min(TRANSPORT_DEFAULTS.heartbeatInterval, Math.max(1, Math.floor(heartbeatTimeout / 4))),
  );
  if (heartbeatInterval >= heartbeatTimeout || heartbeatTimeout > registryTtl) {
    throw new RangeError(
      `RedisTransport: need heartbeatInterval (${heartbeatInterval} ms) < heartbeatTimeout (${heartbeatTimeout} ms) <= registryTtl (${registryTtl} ms)`,
    );
  }
  if (options.redis && options.url !== undefined) throw new TypeError('RedisTransport: give url or redis, not both');
  return {
    prefix: options.prefix ?? TRANSPORT_DEFAULTS.prefix,
    defaultTimeout,
    registryTtl,
    registryInterval,
    maxConcurrent,
    heartbeatInterval,
    heartbeatTimeout,
    logger: options.logger ?? TRANSPORT_DEFAULTS.logger,
  };
}

// Fixed tuning of the transport (not options).
/** BLMPOP / BLPOP timeout, seconds: how long a blocked read waits before it is reissued. */
export const BLOCK_SECONDS = 5;
/**
 * Most requests one server takes off its lists at once: each take is a round trip (a
 * BLMPOP), and a request at most waits behind this many of one take. 64, not smaller: at
 * 100 calls in flight to one server 16 cost a BLMPOP per 16 requests (0.063 per request),
 * 64 one per 50 (0.020); a burst still spreads over servers blocked at once, 64 to each.
 */
export const BATCH = 64;
/** A request list lives this long, ms, past the longest timeout pushed onto it. */
export const LIST_TTL_SLACK = 5_000;
/** Bound on each Redis step of close(), ms, so close never waits for an outage to end. */
export const CLOSE_STEP_MS = 1_000;
