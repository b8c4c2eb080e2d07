import type { RpcValue } from './types';

export type { RpcValue } from './types';

/**
 * Where a call goes. `serverId` names one server (mqant's `moduleType@id`, as in a topic
 * `user@user-1/HD_x`); otherwise `moduleType` lets the transport pick one live server of
 * that type. `key` makes that choice sticky: the same key goes to the same server while
 * the set of servers is unchanged (for stateful modules, e.g. key = userId).
 */
export interface Address {
  serverId?: string;
  moduleType?: string;
  key?: string;
}

/** Who a server is. `serverId` is unique in the app; by mqant convention `type@id`. */
export interface ServerInfo {
  serverId: string;
  moduleType: string;
  /** Free-form metadata (host, pid, version...). */
  meta?: Record<string, string>;
}

/** What a server learns about a call besides its arguments. */
export interface CallContext {
  /** Function name, e.g. `HD_login` or `Bind`. */
  fn: string;
  /** Absolute deadline, epoch ms. Work past it is wasted: the caller has already given up. */
  deadline: number;
}

/** Handles one call. Throw (or reject) to send an error; the message reaches the caller. */
export type RpcHandler = (fn: string, args: RpcValue[], ctx: CallContext) => RpcValue | void | Promise<RpcValue | void>;

export interface CallOptions {
  /** ms until the caller gives up with a DeadlineError. Default: the transport's `defaultTimeout` (10 000 ms). */
  timeout?: number;
}

export interface RpcServerHandle {
  readonly info: ServerInfo;
  /** Stops taking calls; calls already running finish. */
  close(): Promise<void>;
}

/**
 * Every call between the gate and modules goes through a transport; nothing bypasses it,
 * so an app moves from one process to many by swapping the transport alone.
 *
 * Errors (rejections of `call`): `NoServerError` at once when no live server matches the
 * address, `DeadlineError` at the deadline, `TransportClosedError` after `close()`, and an
 * `RpcError` carrying the server's code and message when the handler threw.
 */
export interface RpcTransport {
  /** Default call timeout, ms (10 000: mqant's RPCExpired). */
  readonly defaultTimeout: number;
  /** Starts serving calls addressed to `info.serverId` or to `info.moduleType`. */
  serve(info: ServerInfo, handler: RpcHandler): Promise<RpcServerHandle>;
  /** Calls `fn` on a server and resolves with its result. */
  call(to: Address, fn: string, args: RpcValue[], opts?: CallOptions): Promise<RpcValue>;
  /**
   * Fire and forget (mqant's CallNR): resolves once the call is handed over; the result and
   * any handler error are dropped. Rejects only when no server matches the address.
   */
  callNR(to: Address, fn: string, args: RpcValue[]): Promise<void>;
  /** Servers currently serving `moduleType`, or all when omitted. */
  servers(moduleType?: string): ServerInfo[];
  /** Closes every server this transport started and rejects later calls. */
  close(): Promise<void>;
  /**
   * Optional: resolves once the transport can route, i.e. `servers()` reflects every live
   * server (RedisTransport: subscribed and the shared registry read once; its `call`,
   * `callNR` and `serve` wait for this by themselves). A transport without it is always
   * ready (InProcessTransport).
   */
  ready?(): Promise<void>;
  /**
   * Optional: true while the transport's connection to its broker is up now (RedisTransport:
   * its command connection ready and none of its command, subscriber or registry connections
   * failing; NatsTransport: connected). The gate's `/readyz` reads it on every probe, so an
   * outage shows there at once, not at the next failed call. Absent: always healthy.
   */
  healthy?(): boolean;
  /**
   * Optional: membership events, for transports whose servers come and go on their own
   * (RedisTransport). `serverJoined` / `serverLeft` get a copy of the ServerInfo when a server
   * enters / leaves what `servers()` returns. Check `typeof t.on === 'function'` first.
   */
  on?(event: ServerEventName, listener: (info: ServerInfo) => void): unknown;
  /** Optional: removes a listener added with `on`. */
  off?(event: ServerEventName, listener: (info: ServerInfo) => void): unknown;
}

/** Names of the optional membership events of {@link RpcTransport.on}. */
export type ServerEventName = 'serverJoined' | 'serverLeft';

/** Events of a transport with a registry cache (Redis, NATS): a server entered / left that cache. */
export interface TransportEvents {
  serverJoined: [info: ServerInfo];
  serverLeft: [info: ServerInfo];
}

/** The two gauges every transport's `stats()` has beside its counters. */
export interface TransportGauges {
  /** Calls waiting for a reply (or to be sent) now. */
  pending: number;
  /** Handlers running now. */
  running: number;
}

/** Formats an address for messages: `serverId` or `moduleType`. */
export function describeAddress(to: Address): string {
  return to.serverId ?? to.moduleType ?? '(no address)';
}
