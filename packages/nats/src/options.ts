import { silentLogger, type Logger } from '@mqgate/rpc';
import { optionChecker, RANGES } from '@mqgate/rpc/internal';
import type { NodeConnectionOptions } from '@nats-io/transport-node';

const check = optionChecker('NatsTransport:');
/** A positive number of ms (or a count): the kit's check with the transport's name. */
const positive = (name: string, value: number): number => check(name, value, RANGES.positive);

/** NATS used when neither `servers` nor `url` is given (mqant's `nats.DefaultURL`). */
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** Options of {@link NatsTransport}. Defaults: {@link NATS_DEFAULTS}. */
export interface NatsTransportOptions {
  /**
   * NATS server URL(s): one, a comma-separated list, or an array (a cluster: the client
   * connects to one and fails over to the others, and learns the rest of the cluster from it).
   * @default `nats://127.0.0.1:4222`
   */
  servers?: string | string[];
  /** Put before every subject (`<prefix>.rpc.type.<type>`, ...; subjects.ts). No `.` at the end, no `*`/`>`. @default `'mqgate'` */
  prefix?: string;
  /** Call timeout, ms, when a call gives none (mqant's RPCExpired). Positive. @default 10 000 */
  defaultTimeout?: number;
  /** ms a registry entry lives without a heartbeat: how long a crashed server stays listed. Positive. @default 3 000 */
  registryTtl?: number;
  /** ms between a server's heartbeats. Positive and below `registryTtl`. @default 1 000, or a third of `registryTtl` when that is shorter */
  registryInterval?: number;
  /**
   * ms between two liveness probes of the servers holding calls sent more than this long ago
   * (liveness.ts): how soon calls in flight to a module process that died reject with
   * ServerLostError (code NO_SERVER) instead of waiting for their deadlines. Costs one empty
   * message per such server per interval, none while every call answers faster. Positive.
   * @default 250
   */
  probeInterval?: number;
  /**
   * Calls one server runs at once. At this many (running plus held) it leaves its type's
   * queue group, so new work for the type goes to other servers (callers wait while every
   * server of the type is busy), and rejoins at half. A positive integer.
   * @default 256
   */
  maxConcurrent?: number;
  /**
   * ms a new transport collects the answers of live servers before {@link NatsTransport.ready}
   * resolves (after the last answer; with no server at all it resolves at once). Positive.
   * @default 50
   */
  discoveryStall?: number;
  /** ms between attempts while the first connection fails (later reconnects are the client's, every `reconnectTimeWait`). @default 500 */
  reconnectTimeWait?: number;
  /**
   * Further options of `@nats-io/transport-node`'s `connect` (auth, TLS, name, pings...).
   * `servers`, `reconnect`, `maxReconnectAttempts` and `reconnectTimeWait` are set by the transport.
   * @default `{}`
   */
  connection?: Partial<NodeConnectionOptions>;
  /** Where connection trouble is reported (once per outage). @default silent */
  logger?: Logger;
}

export const NATS_DEFAULTS = Object.freeze({
  servers: [DEFAULT_NATS_URL] as readonly string[],
  prefix: 'mqgate',
  defaultTimeout: 10_000,
  registryTtl: 3_000,
  /** The default `registryInterval` for a `registryTtl`, ms. */
  registryInterval: (registryTtl: number): number => Math.min(1_000, Math.floor(registryTtl / 3)),
  maxConcurrent: 256,
  probeInterval: 250,
  discoveryStall: 50,
  reconnectTimeWait: 500,
  logger: silentLogger as Logger,
});

/** {@link NatsTransportOptions} with every default applied and checked. */
export interface ResolvedNatsOptions {
  servers: string[];
  prefix: string;
  defaultTimeout: number;
  registryTtl: number;
  registryInterval: number;
  maxConcurrent: number;
  probeInterval: number;
  discoveryStall: number;
  reconnectTimeWait: number;
  connection: Partial<NodeConnectionOptions>;
  logger: Logger;
}

/**
 * Applies the defaults and checks the values.
 * @throws RangeError for a non-positive number, a fractional `maxConcurrent`, or `registryInterval >= registryTtl`;
 *   TypeError for a prefix with `*`, `>`, whitespace or an empty token, or no server URL.
 */
export function resolveNatsOptions(o: NatsTransportOptions): ResolvedNatsOptions {
  const registryTtl = positive('registryTtl', o.registryTtl ?? NATS_DEFAULTS.registryTtl);
  const registryInterval = positive('registryInterval', o.registryInterval ?? NATS_DEFAULTS.registryInterval(registryTtl));
  if (registryInterval >= registryTtl)
    throw new RangeError(`NatsTransport: registryInterval (${registryInterval} ms) must be below registryTtl (${registryTtl} ms)`);
  const maxConcurrent = positive('maxConcurrent', o.maxConcurrent ?? NATS_DEFAULTS.maxConcurrent);
  if (!Number.isInteger(maxConcurrent)) throw new RangeError(`NatsTransport: maxConcurrent must be an integer, got ${maxConcurrent}`);
  const prefix = o.prefix ?? NATS_DEFAULTS.prefix;
  if (!/^[^\s.*>]+(\.[^\s.*>]+)*$/.test(prefix))
    throw new TypeError(`NatsTransport: prefix must be dot-separated tokens without *, > or spaces, got ${JSON.stringify(prefix)}`);
  const servers = (Array.isArray(o.servers) ? o.servers : (o.servers ?? NATS_DEFAULTS.servers.join(',')).split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  if (servers.length === 0) throw new TypeError('NatsTransport: servers names no URL');
  return {
    servers,
    prefix,
    defaultTimeout: positive('defaultTimeout', o.defaultTimeout ?? NATS_DEFAULTS.defaultTimeout),
    registryTtl,
    registryInterval,
    maxConcurrent,
    probeInterval: positive('probeInterval', o.probeInterval ?? NATS_DEFAULTS.probeInterval),
    discoveryStall: positive('discoveryStall', o.discoveryStall ?? NATS_DEFAULTS.discoveryStall),
    reconnectTimeWait: positive('reconnectTimeWait', o.reconnectTimeWait ?? NATS_DEFAULTS.reconnectTimeWait),
    connection: o.connection ?? {},
    logger: o.logger ?? NATS_DEFAULTS.logger,
  };
}
