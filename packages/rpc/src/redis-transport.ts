import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import { DeadlineError, fromWireError, NoServerError, RpcError, toWireError, TransportClosedError } from './errors';
import { hash } from './in-process-transport';
import { silentLogger, type Logger } from './logger';
import { quitRedis } from './redis-quit';
import { RedisRegistry, registryKeys, type RegistryKeys } from './registry';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, RequestArgsError, type RpcRequest } from './rpc-codec';
import {
  describeAddress,
  type Address,
  type CallOptions,
  type RpcHandler,
  type RpcServerHandle,
  type RpcTransport,
  type RpcValue,
  type ServerInfo,
} from './transport';

/** Options of {@link RedisTransport}. Give `url` or `redis`, not both. */
export interface RedisTransportOptions {
  /**
   * Redis to connect to, e.g. `redis://:password@host:6379/0` (`rediss://` for TLS). Default
   * `redis://127.0.0.1:6379`. The transport creates its connections (command connection with
   * auto-pipelining, a subscriber, one blocking connection per served server) and quits them
   * on {@link RedisTransport.close}.
   */
  url?: string;
  /**
   * An existing ioredis client (`Redis` or `Cluster`) to send commands on; it is never quit
   * and its `error` events are left to its owner. The subscriber and blocking connections are
   * `duplicate()`s of it (closed by the transport). Turn on its `enableAutoPipelining` for
   * throughput. Its `keyPrefix`, if any, goes before `prefix` (channel names get none).
   */
  redis?: Redis | Cluster;
  /** Put before every key and channel name. Default `'mqgate:'`. */
  prefix?: string;
  /** Call timeout in ms when a call gives none (mqant's RPCExpired). Default 10 000. */
  defaultTimeout?: number;
  /** How long a registry entry lives without a refresh, ms (mqant: 20 s). Default 20 000. */
  registryTtl?: number;
  /**
   * How often, in ms, each server refreshes its registry entry and each transport re-reads
   * the registry (mqant: 10 s). Must be below `registryTtl`. Default 10 000, or half of
   * `registryTtl` when that is shorter.
   */
  registryInterval?: number;
  /**
   * Calls one server runs at once. At this many it stops taking requests off its lists
   * until one finishes, so work queued for its module type goes to the other servers.
   * Default 256.
   */
  maxConcurrent?: number;
  /** Where connection trouble is reported (once per outage, not per message). Default: silent. */
  logger?: Logger;
}

/** Counters of one {@link RedisTransport}, since it was created. */
export interface RedisTransportStats {
  /** `call()`s made (including ones that failed). */
  calls: number;
  /** `callNR()`s made. */
  callsNR: number;
  /** Replies matched to a waiting call. */
  replies: number;
  /** Calls that were sent but got no reply by their deadline (DeadlineError). */
  deadlines: number;
  /** Calls (and callNRs) that could not be sent: Redis unavailable, at the deadline or on a failed send. */
  unsent: number;
  /** Replies that arrived for no waiting call (after its deadline, or after close): dropped. */
  lateReplies: number;
  /** Requests this transport's servers started handling. */
  served: number;
  /** Requests this transport's servers took off a list after their deadline: dropped unrun. */
  expiredDropped: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
  /** Requests still queued for a server of this transport when it closed, answered with code CLOSED. */
  closedRejected: number;
  /** Requests or replies that did not decode. */
  malformed: number;
  /** Calls waiting for a reply (or to be sent) now. */
  pending: number;
  /** Handlers running now. */
  running: number;
}

/** Events of {@link RedisTransport}: a server entered / left this transport's registry cache. */
export interface RedisTransportEvents {
  serverJoined: [info: ServerInfo];
  serverLeft: [info: ServerInfo];
}

/**
 * A call could not be sent because Redis is unreachable (code `UNAVAILABLE`). The message
 * names the connection state and the last connection error, e.g. `Redis unavailable: call
 * HD_login not sent within 10000 ms (command connection reconnecting; last error: connect
 * ECONNREFUSED 127.0.0.1:6379)`.
 */
export class RedisUnavailableError extends RpcError {
  constructor(message: string) {
    super(message, 'UNAVAILABLE');
  }
}

/** Default key and channel prefix. */
export const DEFAULT_RPC_PREFIX = 'mqgate:';
const DEFAULT_URL = 'redis://127.0.0.1:6379';
/** BLMPOP / BLPOP timeout, seconds: how long a blocked read waits before it is reissued. */
const BLOCK_SECONDS = 5;
/** Most requests one server takes off its lists at once (small, so a burst is spread over the servers). */
const BATCH = 16;
/** A request list lives this long (ms) past the longest timeout pushed onto it. */
const LIST_TTL_SLACK = 5_000;
/** Bound on each Redis step of close(), ms, so close never waits for an outage to end. */
const CLOSE_STEP_MS = 1_000;

/** The request lists of a module type; the `{moduleType}` hash tag keeps them in one Cluster slot. */
export function rpcListKeys(prefix: string, moduleType: string, serverId: string): { type: string; server: string } {
  const base = `${prefix}rpc:{${moduleType}}:`;
  return { type: `${base}type`, server: `${base}server:${serverId}` };
}

/** KEYS list; ARGV request bytes, ms: RPUSH, and make the list live at least that long. */
const PUSH = `redis.call('RPUSH', KEYS[1], ARGV[1])
local want = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end
return 1`;

interface PushScript {
  mqgateRpcPush(key: string, request: Buffer, ttlMs: number): Promise<number>;
}

interface Pending {
  resolve(value: RpcValue): void;
  reject(err: RpcError): void;
  timer: NodeJS.Timeout;
  fn: string;
  timeout: number;
  /** The request was handed to Redis. */
  sent: boolean;
  /** callNR: settles when the push is acknowledged, never by a reply. */
  nr: boolean;
}

/** One server this transport runs. */
interface Server {
  info: ServerInfo;
  handler: RpcHandler;
  keys: { type: string; server: string };
  open: boolean;
  running: number;
  /** Latest deadline among running calls (bounds a graceful close). */
  latestDeadline: number;
  blocking?: Redis | Cluster;
  /** CLIENT ID of the blocking connection (standalone Redis), to CLIENT UNBLOCK it on close. */
  clientId?: number;
  loopDone?: Promise<void>;
  /** Wakes the loop from waiting for a free slot or from a backoff sleep. */
  wake?: () => void;
  /** Resolves waiters when `running` drops to 0. */
  idle: Array<() => void>;
  stopping?: Promise<void>;
}

const PACKAGE_VERSION = readVersion();

/**
 * An {@link RpcTransport} over Redis (ioredis 5): gates and modules in any number of
 * processes and hosts share one Redis, and an app moves from {@link InProcessTransport} to
 * this one by configuration alone.
 *
 * **Delivery.** A request (protobuf `mqgate.rpc.Request`, see proto/rpc.proto and
 * rpc-codec.ts) is pushed (`RPUSH`, a Lua script that also keeps the list's TTL past the
 * longest deadline on it) onto a Redis list:
 * - to a module type → the type's list `<prefix>rpc:{<type>}:type`, shared by all its live
 *   servers (competing consumers);
 * - to a serverId → that server's list `<prefix>rpc:{<type>}:server:<serverId>`;
 * - to a module type with `key` → the list of one live server of the type, picked by
 *   rendezvous hashing of the key (FNV-1a of serverId + key): the same key goes to the same
 *   server while it lives, and only the keys of a server that leaves move.
 *
 * Each served server has its own blocking connection running `BLMPOP` over its own list and
 * its type's list (own list first; Redis < 7: `BLPOP` then `LPOP count`), taking up to
 * `min(16, maxConcurrent - running)` requests at once (small batches spread a burst over the
 * servers) and none while `running` is at `maxConcurrent`, so a busy or dead server takes no
 * new work. A popped request is never re-queued: delivery is at most once. Replies (protobuf `mqgate.rpc.Response`) are
 * published to the caller's reply channel `<prefix>rpc:reply:<transportId>`, read by the
 * transport's one subscriber connection. The command connection auto-pipelines, so many
 * calls share one round trip.
 *
 * **Deadlines** are absolute epoch ms (hosts' clocks must agree, e.g. NTP). The caller
 * rejects with DeadlineError at the deadline; a server drops unrun (and counts in
 * `expiredDropped`) a request whose deadline passed before it starts; a reply after the
 * deadline is dropped and counted in `lateReplies`. A server process that dies holding
 * requests: their callers fail at their deadlines.
 *
 * **Registry** (see registry.ts): each server is registered with meta `host`, `pid`,
 * `version` (of @mqgate/rpc) and `startedAt` (ISO time) besides its own meta, refreshed every
 * `registryInterval` ms with a TTL of `registryTtl` ms, deregistered on a clean stop. Every
 * transport caches the live servers (join/leave events plus a full re-read every
 * `registryInterval`); {@link servers} and routing read that cache synchronously, so a call
 * to a type or serverId with no live server rejects at once with NoServerError. The cache
 * is loaded before {@link ready} resolves; `call`, `callNR` and `serve` wait for it.
 *
 * **Failures.** Redis errors never crash the process. A call made while Redis is unreachable
 * waits for the connection until its deadline, then rejects with {@link RedisUnavailableError}
 * (code `UNAVAILABLE`, naming the connection state and last error); a send that fails
 * rejects with it at once. Servers retry their blocked reads with a capped backoff and keep
 * their registry entries refreshed once Redis is back.
 *
 * Events: `serverJoined` / `serverLeft` with the ServerInfo (a copy), when a server enters or
 * leaves this transport's cache (including its own servers).
 *
 * @throws TypeError from the constructor when both `url` and `redis` are given; RangeError
 *   for a non-positive `defaultTimeout`, `registryTtl`, `registryInterval` or `maxConcurrent`,
 *   a fractional `maxConcurrent`, or `registryInterval >= registryTtl`.
 */
export class RedisTransport extends EventEmitter<RedisTransportEvents> implements RpcTransport {
  readonly defaultTimeout: number;
  readonly prefix: string;
  readonly registryTtl: number;
  readonly registryInterval: number;
  readonly maxConcurrent: number;
  /** Random id of this transport: names its reply channel. */
  readonly id: string;
  /** The Pub/Sub channel replies to this transport's calls arrive on. */
  readonly replyChannel: string;
  /** The registry's keys and channel. */
  readonly registryKeys: RegistryKeys;

  private readonly command: Redis | Cluster;
  private readonly subscriber: Redis | Cluster;
  private readonly owned: boolean;
  private readonly logger: Logger;
  private readonly registry: RedisRegistry;
  private readonly push: PushScript;
  private readonly callerId: string;
  private readonly pending = new Map<number, Pending>();
  /** Calls waiting for the registry's first load or for the command connection. */
  private readonly waiters = new Map<number, () => void>();
  private readonly ownServers = new Map<string, Server>();
  private readonly counters = {
    calls: 0,
    callsNR: 0,
    replies: 0,
    deadlines: 0,
    unsent: 0,
    lateReplies: 0,
    served: 0,
    expiredDropped: 0,
    handlerErrors: 0,
    closedRejected: 0,
    malformed: 0,
  };
  private nextId = 0;
  private loaded = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly readyPromise: Promise<void>;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private signalClosed!: () => void;
  private readonly closedSignal = new Promise<void>((resolve) => (this.signalClosed = resolve));
  private readonly lastErrors = new Map<string, Error>();
  private readonly down = new Set<string>();
  private readonly onCommandReady = () => {
    this.recovered('command');
    this.wake();
  };

  constructor(options: RedisTransportOptions = {}) {
    super();
    this.defaultTimeout = positive('defaultTimeout', options.defaultTimeout ?? 10_000);
    this.registryTtl = positive('registryTtl', options.registryTtl ?? 20_000);
    this.registryInterval = positive('registryInterval', options.registryInterval ?? Math.min(10_000, Math.floor(this.registryTtl / 2)));
    this.maxConcurrent = positive('maxConcurrent', options.maxConcurrent ?? 256);
    if (!Number.isInteger(this.maxConcurrent)) throw new RangeError(`RedisTransport: maxConcurrent must be an integer, got ${this.maxConcurrent}`);
    if (this.registryInterval >= this.registryTtl) {
      throw new RangeError(`RedisTransport: registryInterval (${this.registryInterval} ms) must be below registryTtl (${this.registryTtl} ms)`);
    }
    this.prefix = options.prefix ?? DEFAULT_RPC_PREFIX;
    this.logger = options.logger ?? silentLogger;
    this.id = randomBytes(8).toString('hex');
    this.callerId = `${hostname()}/${process.pid}/${this.id}`;
    this.replyChannel = `${this.prefix}rpc:reply:${this.id}`;
    this.registryKeys = registryKeys(this.prefix);

    if (options.redis) {
      if (options.url !== undefined) throw new TypeError('RedisTransport: give url or redis, not both');
      this.command = options.redis;
      this.owned = false;
    } else {
      this.command = new Redis(options.url ?? DEFAULT_URL, { ...CONNECTION_OPTIONS, enableAutoPipelining: true });
      this.owned = true;
      this.watchErrors(this.command, 'command');
    }
    this.command.on('ready', this.onCommandReady);
    this.command.defineCommand('mqgateRpcPush', { numberOfKeys: 1, lua: PUSH });
    this.push = this.command as unknown as PushScript;

    this.registry = new RedisRegistry(this.command, this.prefix, this.registryTtl, {
      joined: (info) => this.emitSafely('serverJoined', info),
      left: (info) => this.emitSafely('serverLeft', info),
    });

    this.subscriber = this.duplicate('subscriber');
    const replyChannel = Buffer.from(this.replyChannel);
    const eventsChannel = Buffer.from(this.registryKeys.events);
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (channel.equals(replyChannel)) this.onReply(message);
      else if (channel.equals(eventsChannel)) this.registry.onEvent(message.toString());
    });
    // Events may have been missed while the subscriber was away: re-read the registry.
    this.subscriber.on('ready', () => void this.tick());

    this.readyPromise = this.init();
    this.readyPromise.catch(() => undefined);
  }

  /**
   * Resolves once the transport is subscribed to its reply channel and to registry events
   * and has read the registry once, so {@link servers} is complete. While Redis is
   * unreachable it keeps retrying (with a capped backoff); rejects with TransportClosedError
   * if the transport is closed first.
   */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Counters since creation, plus `pending` calls and `running` handlers now. */
  stats(): RedisTransportStats {
    let running = 0;
    for (const s of this.ownServers.values()) running += s.running;
    return { ...this.counters, pending: this.pending.size, running };
  }

  /**
   * Registers `info` in the registry and starts taking calls addressed to `info.serverId`
   * or to `info.moduleType`. Waits for {@link ready}. The registered meta is `host`, `pid`,
   * `version`, `startedAt`, overridden by `info.meta`.
   * @throws TypeError for an empty serverId or moduleType, or a moduleType with `{` or `}`;
   *   RpcError `DUPLICATE_SERVER` when this transport already serves that id;
   *   TransportClosedError after close(); RedisUnavailableError when registering fails.
   */
  async serve(info: ServerInfo, handler: RpcHandler): Promise<RpcServerHandle> {
    if (this.closed) throw new TransportClosedError();
    if (typeof info?.serverId !== 'string' || info.serverId === '') throw new TypeError('serve: serverId must be a non-empty string');
    if (typeof info.moduleType !== 'string' || info.moduleType === '' || /[{}]/.test(info.moduleType)) {
      throw new TypeError(`serve: moduleType must be a non-empty string without { or }: ${JSON.stringify(info.moduleType)}`);
    }
    if (this.ownServers.has(info.serverId)) throw new RpcError(`server id ${info.serverId} is already serving`, 'DUPLICATE_SERVER');
    const full: ServerInfo = {
      serverId: info.serverId,
      moduleType: info.moduleType,
      meta: { host: hostname(), pid: String(process.pid), version: PACKAGE_VERSION, startedAt: new Date().toISOString(), ...info.meta },
    };
    const s: Server = {
      info: full,
      handler,
      keys: rpcListKeys(this.prefix, full.moduleType, full.serverId),
      open: true,
      running: 0,
      latestDeadline: 0,
      idle: [],
    };
    this.ownServers.set(full.serverId, s);
    try {
      await Promise.race([this.readyPromise, this.closedSignal]);
      if (!s.open || this.closed) throw new TransportClosedError();
      let added: boolean;
      try {
        added = await this.registry.register(full);
        if (s.open) await this.registry.publishJoin(full);
      } catch (err) {
        throw new RedisUnavailableError(`serve ${full.serverId}: registering failed: ${messageOf(err)} (${this.describe()})`);
      }
      if (!s.open || this.closed) throw new TransportClosedError();
      if (!added) this.logger.warn({ serverId: full.serverId }, 'server id was already registered (a restart within the registry TTL, or a duplicate id)');
      this.registry.noteLocalJoin(full);
      s.blocking = this.duplicate(`blocking ${full.serverId}`);
      s.loopDone = this.loop(s);
    } catch (err) {
      s.open = false;
      if (this.ownServers.get(full.serverId) === s) this.ownServers.delete(full.serverId);
      throw err;
    }
    return { info: copyInfo(full), close: () => this.stopServer(s, true) };
  }

  /**
   * Calls `fn` at `to` and resolves with its result (`undefined` results arrive as null).
   * Rejects with NoServerError at once when no live server matches (after the registry's
   * first load), DeadlineError at the deadline (`opts.timeout`, default `defaultTimeout`
   * ms), RedisUnavailableError when it could not be sent, TransportClosedError on close(),
   * an EncodeError (code `ENCODE`) for an argument that cannot be encoded, or an RpcError
   * with the handler's code and message.
   */
  call(to: Address, fn: string, args: RpcValue[], opts?: CallOptions): Promise<RpcValue> {
    return new Promise<RpcValue>((resolve, reject) => {
      if (this.closed) {
        reject(new TransportClosedError());
        return;
      }
      this.counters.calls++;
      const timeout = Math.max(0, opts?.timeout ?? this.defaultTimeout);
      const id = this.newId();
      const p: Pending = { resolve, reject, fn, timeout, sent: false, nr: false, timer: setTimeout(() => this.expire(id), timeout) };
      this.pending.set(id, p);
      this.dispatch(id, p, to, args, Date.now() + timeout, this.replyChannel);
    });
  }

  /**
   * Fire and forget: resolves once Redis has the request (the server drops it unrun if it
   * does not start within `defaultTimeout` ms). Rejects with NoServerError at once when no
   * live server matches, RedisUnavailableError when it could not be handed over within
   * `defaultTimeout` ms, TransportClosedError on close().
   */
  callNR(to: Address, fn: string, args: RpcValue[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed) {
        reject(new TransportClosedError());
        return;
      }
      this.counters.callsNR++;
      const timeout = this.defaultTimeout;
      const id = this.newId();
      const p: Pending = { resolve: () => resolve(), reject, fn, timeout, sent: false, nr: true, timer: setTimeout(() => this.expire(id), timeout) };
      this.pending.set(id, p);
      this.dispatch(id, p, to, args, Date.now() + timeout, '');
    });
  }

  /**
   * Live servers of `moduleType`, or all, sorted by serverId (copies), from the local
   * registry cache: empty before {@link ready} resolves.
   */
  servers(moduleType?: string): ServerInfo[] {
    return this.registry.list(moduleType);
  }

  /**
   * Deregisters this transport's servers (publishing leave events), stops their blocking
   * reads, answers requests still queued on their own lists with code CLOSED, rejects
   * pending calls with TransportClosedError, and quits the connections it created (a given
   * `redis` client stays open). Handlers still running are not awaited (close each server's
   * handle first for that); their replies are dropped. Each Redis step is bounded (1 s), so
   * close() finishes during an outage too. Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  // ---------------------------------------------------------------- calls

  private newId(): number {
    do {
      this.nextId = (this.nextId + 1) >>> 0;
    } while (this.nextId === 0 || this.pending.has(this.nextId));
    return this.nextId;
  }

  /** Routes and encodes a call once the registry is loaded, then sends it. */
  private dispatch(id: number, p: Pending, to: Address, args: RpcValue[], deadline: number, replyTo: string): void {
    if (!this.loaded) {
      this.waiters.set(id, () => this.dispatch(id, p, to, args, deadline, replyTo));
      return;
    }
    let key: string;
    let bytes: Buffer;
    try {
      key = this.route(to);
      bytes = encodeRequest({ id, fn: p.fn, args, replyTo, deadline, caller: this.callerId });
    } catch (err) {
      this.settle(id, err instanceof RpcError ? err : new RpcError(messageOf(err), 'ENCODE'));
      return;
    }
    this.send(id, p, key, bytes);
  }

  /** Pushes the request once the command connection is ready. */
  private send(id: number, p: Pending, key: string, bytes: Buffer): void {
    if (this.command.status !== 'ready') {
      this.waiters.set(id, () => this.send(id, p, key, bytes));
      return;
    }
    p.sent = true;
    this.push.mqgateRpcPush(key, bytes, p.timeout + LIST_TTL_SLACK).then(
      () => {
        if (p.nr) this.settle(id, undefined);
      },
      (err: unknown) => {
        if (!this.pending.has(id)) return;
        this.counters.unsent++;
        this.settle(id, this.unavailable(`${p.nr ? 'callNR' : 'call'} ${p.fn} failed to send: ${sendFailure(err)}`));
      },
    );
  }

  /** The list a call goes to. @throws NoServerError */
  private route(to: Address): string {
    if (to.serverId !== undefined) {
      const info = this.registry.get(to.serverId);
      if (!info) throw new NoServerError(to.serverId);
      return rpcListKeys(this.prefix, info.moduleType, info.serverId).server;
    }
    if (to.moduleType === undefined) throw new NoServerError(describeAddress(to));
    const live = this.registry.live(to.moduleType);
    if (live.length === 0) throw new NoServerError(to.moduleType);
    if (to.key === undefined) return rpcListKeys(this.prefix, to.moduleType, '').type;
    const chosen = pickSticky(to.key, live);
    return rpcListKeys(this.prefix, chosen.moduleType, chosen.serverId).server;
  }

  /** Runs waiting calls whose condition may now hold (each re-queues itself if not). */
  private wake(): void {
    if (this.waiters.size === 0) return;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const [id, run] of waiting) if (this.pending.has(id)) run();
  }

  private expire(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.waiters.delete(id);
    if (p.sent && !p.nr) {
      this.counters.deadlines++;
      p.reject(new DeadlineError(p.fn, p.timeout));
      return;
    }
    this.counters.unsent++;
    const what = this.loaded ? 'command' : 'registry';
    p.reject(
      this.unavailable(
        `${p.nr ? 'callNR' : 'call'} ${p.fn} not ${p.sent ? 'acknowledged' : 'sent'} within ${p.timeout} ms${what === 'registry' ? ' (the registry was never read)' : ''}`,
      ),
    );
  }

  private settle(id: number, err: RpcError | undefined, value?: RpcValue): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.waiters.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(value === undefined ? null : value);
  }

  private onReply(bytes: Buffer): void {
    let res;
    try {
      res = decodeResponse(bytes);
    } catch {
      this.counters.malformed++;
      return;
    }
    const p = this.pending.get(res.id);
    if (!p || p.nr) {
      this.counters.lateReplies++;
      return;
    }
    this.counters.replies++;
    if (res.error) this.settle(res.id, fromWireError(res.error));
    else this.settle(res.id, undefined, res.result ?? null);
  }

  // ---------------------------------------------------------------- servers

  /** Takes requests off the server's lists while it is open. Never rejects. */
  private async loop(s: Server): Promise<void> {
    const blocking = s.blocking as Redis | Cluster;
    const unblockable = !isCluster(blocking);
    let useBlmpop = true;
    let failures = 0;
    let needId = unblockable;
    while (s.open) {
      if (s.running >= this.maxConcurrent) {
        await new Promise<void>((resolve) => (s.wake = resolve));
        s.wake = undefined;
        continue;
      }
      const room = Math.min(BATCH, this.maxConcurrent - s.running);
      let items: Buffer[] | null;
      try {
        if (needId) {
          s.clientId = await (blocking as Redis).client('ID');
          needId = false;
          if (!s.open) break;
        }
        items = useBlmpop ? await this.blmpop(blocking, s, room) : await this.blpop(blocking, s, room);
        if (failures > 0) this.recovered(`blocking ${s.info.serverId}`);
        failures = 0;
      } catch (err) {
        if (!s.open) break;
        if (useBlmpop && /unknown command/i.test(messageOf(err))) {
          useBlmpop = false; // Redis < 7
          continue;
        }
        failures++;
        needId = unblockable;
        this.noteFailure(`blocking ${s.info.serverId}`, err);
        await this.sleep(reconnectDelay(failures), s);
        continue;
      }
      if (items) for (const item of items) this.accept(s, item);
    }
  }

  private async blmpop(blocking: Redis | Cluster, s: Server, room: number): Promise<Buffer[] | null> {
    const reply = await blocking.blmpopBuffer(BLOCK_SECONDS, 2, s.keys.server, s.keys.type, 'LEFT', 'COUNT', room);
    return reply ? reply[1] : null;
  }

  /** Redis < 7: BLPOP one, then LPOP up to `room - 1` more from the same list. */
  private async blpop(blocking: Redis | Cluster, s: Server, room: number): Promise<Buffer[] | null> {
    const reply = await blocking.blpopBuffer(s.keys.server, s.keys.type, BLOCK_SECONDS);
    if (!reply) return null;
    const items = [reply[1]];
    if (room > 1) {
      const more = await blocking.lpopBuffer(reply[0], room - 1).catch(() => null);
      if (more) items.push(...more);
    }
    return items;
  }

  /** Runs one popped request (or drops it when its deadline has passed). */
  private accept(s: Server, bytes: Buffer): void {
    let req: RpcRequest;
    try {
      req = decodeRequest(bytes);
    } catch (err) {
      this.counters.malformed++;
      if (err instanceof RequestArgsError && err.request.replyTo) {
        this.reply(err.request.replyTo, err.request.id, { code: 'DECODE', message: err.message });
      }
      return;
    }
    if (Date.now() > req.deadline) {
      this.counters.expiredDropped++;
      return;
    }
    this.counters.served++;
    s.running++;
    if (req.deadline > s.latestDeadline) s.latestDeadline = req.deadline;
    void this.invoke(s, req);
  }

  private async invoke(s: Server, req: RpcRequest): Promise<void> {
    let result: RpcValue | void = null;
    let error: unknown;
    let failed = false;
    try {
      result = await s.handler(req.fn, req.args, { fn: req.fn, deadline: req.deadline });
    } catch (err) {
      failed = true;
      error = err;
      this.counters.handlerErrors++;
    }
    s.running--;
    s.wake?.();
    if (s.running === 0) for (const resolve of s.idle.splice(0)) resolve();
    if (!req.replyTo) return;
    if (failed) this.reply(req.replyTo, req.id, toWireError(error));
    else this.reply(req.replyTo, req.id, undefined, result === undefined ? null : result);
  }

  private reply(channel: string, id: number, error: { code: string; message: string } | undefined, result?: RpcValue): void {
    if (this.command.status === 'end') return;
    this.command.publish(channel, encodeResponse({ id, error, result })).catch(() => undefined);
  }

  /**
   * Graceful stop of one server: deregister (leave event), stop its blocking read, answer
   * requests left on its own list with CLOSED, then (when `waitRunning`) wait for running
   * handlers, at most until the latest deadline among them.
   */
  private stopServer(s: Server, waitRunning: boolean): Promise<void> {
    if (!s.stopping) {
      s.stopping = (async () => {
        s.open = false;
        if (this.ownServers.get(s.info.serverId) === s) this.ownServers.delete(s.info.serverId);
        this.registry.noteLocalLeave(s.info.serverId);
        await this.bounded(this.registry.deregister(s.info));
        await this.stopLoop(s);
        await this.bounded(this.drainOwn(s));
        this.lastErrors.delete(`blocking ${s.info.serverId}`);
        this.down.delete(`blocking ${s.info.serverId}`);
        if (waitRunning && s.running > 0) {
          const idle = new Promise<void>((resolve) => s.idle.push(resolve));
          await this.bounded(idle, Math.max(0, s.latestDeadline - Date.now()) + 100);
        }
      })().catch(() => undefined);
    }
    return s.stopping;
  }

  /** Ends the loop: CLIENT UNBLOCK its blocked read (nothing popped is lost), else disconnect. */
  private async stopLoop(s: Server): Promise<void> {
    s.wake?.();
    const blocking = s.blocking;
    if (!blocking || !s.loopDone) return;
    const done = s.loopDone.then(() => true);
    if (!isCluster(this.command) && this.command.status === 'ready') {
      const until = Date.now() + CLOSE_STEP_MS;
      while (Date.now() < until) {
        if (s.clientId !== undefined) await this.bounded((this.command as Redis).client('UNBLOCK', s.clientId), 200);
        if (await within(done, 25)) break;
      }
    }
    blocking.disconnect();
    await s.loopDone;
  }

  /** Answers requests still queued on the server's own list with TransportClosedError (code CLOSED). */
  private async drainOwn(s: Server): Promise<void> {
    if (this.command.status !== 'ready') return;
    for (let round = 0; round < 100; round++) {
      const items = await this.command.lpopBuffer(s.keys.server, BATCH);
      if (!items || items.length === 0) return;
      const closed = toWireError(new TransportClosedError(`server ${s.info.serverId}`));
      for (const bytes of items) {
        try {
          const req = decodeRequest(bytes);
          this.counters.closedRejected++;
          if (req.replyTo && req.deadline >= Date.now()) this.reply(req.replyTo, req.id, closed);
        } catch {
          this.counters.malformed++;
        }
      }
    }
  }

  // ---------------------------------------------------------------- registry

  private async init(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      try {
        await this.subscriber.subscribe(this.registryKeys.events, this.replyChannel);
        await this.registry.load();
        if (this.closed) break;
        this.loaded = true;
        this.recovered('registry');
        this.timer = setInterval(() => void this.tick(), this.registryInterval);
        this.wake();
        return;
      } catch (err) {
        attempt++;
        this.noteFailure('registry', err);
        await this.sleep(reconnectDelay(attempt));
      }
    }
    throw new TransportClosedError();
  }

  /** Refreshes this transport's servers' entries, then re-reads the registry. Never rejects. */
  private async tick(): Promise<void> {
    if (this.ticking || this.closed || !this.loaded) return;
    this.ticking = true;
    try {
      this.registry.pruneExpired();
      let failure: unknown;
      const work = (async () => {
        await Promise.all([...this.ownServers.values()].map((s) => this.refresh(s)));
        await this.registry.load();
      })().catch((err: unknown) => {
        failure = err;
        throw err;
      });
      if (!(await within(work, this.registryTtl))) throw failure ?? new Error(`registry refresh got no answer within ${this.registryTtl} ms`);
      this.recovered('registry');
    } catch (err) {
      this.noteFailure('registry', err);
    } finally {
      this.ticking = false;
    }
  }

  private async refresh(s: Server): Promise<void> {
    if (!s.open) return;
    const added = await this.registry.register(s.info);
    if (!s.open) return;
    this.registry.noteLocalJoin(s.info);
    if (added) await this.registry.publishJoin(s.info);
  }

  // ---------------------------------------------------------------- connections

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.signalClosed();
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.ownServers.values()].map((s) => this.stopServer(s, false)));
    for (const [id] of [...this.pending]) this.settle(id, new TransportClosedError());
    this.waiters.clear();
    this.command.off('ready', this.onCommandReady);
    await quitRedis(this.subscriber, CLOSE_STEP_MS);
    if (this.owned) await quitRedis(this.command, CLOSE_STEP_MS);
  }

  /** A subscriber or blocking connection: a duplicate of the command connection, without auto-pipelining. */
  private duplicate(role: string): Redis | Cluster {
    let conn: Redis | Cluster;
    if (isCluster(this.command)) {
      conn = this.command.duplicate(undefined, { enableAutoPipelining: false });
    } else {
      conn = (this.command as Redis).duplicate({ ...CONNECTION_OPTIONS, enableAutoPipelining: false, lazyConnect: false });
    }
    this.watchErrors(conn, role);
    return conn;
  }

  private watchErrors(conn: Redis | Cluster, role: string): void {
    conn.on('error', (err: Error) => this.noteFailure(role, err));
    conn.on('ready', () => this.recovered(role));
  }

  /** Remembers a connection error; logs the first of an outage only. */
  private noteFailure(role: string, err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.lastErrors.set(role, error);
    if (this.closed || this.down.has(role)) return;
    this.down.add(role);
    this.logger.warn({ transport: this.id, connection: role, error: error.message }, 'Redis unavailable; retrying');
  }

  private recovered(role: string): void {
    if (!this.down.delete(role)) return;
    this.lastErrors.delete(role);
    if (!this.closed) this.logger.info({ transport: this.id, connection: role }, 'Redis available again');
  }

  /** `command connection <status>; last error: <message>`, for error messages. */
  private describe(): string {
    const last = this.lastErrors.get('command') ?? this.lastErrors.get('registry');
    return `command connection ${this.command.status}${last ? `; last error: ${last.message.replace(/^Error: /, '')}` : ''}`;
  }

  private unavailable(what: string): RedisUnavailableError {
    return new RedisUnavailableError(`Redis unavailable: ${what} (${this.describe()})`);
  }

  private emitSafely(event: keyof RedisTransportEvents, info: ServerInfo): void {
    try {
      this.emit(event, info);
    } catch (err) {
      this.logger.error({ event, serverId: info.serverId, error: messageOf(err) }, 'a server event listener threw');
    }
  }

  /** Waits `ms`, or less if the transport closes or `s` is woken. */
  private sleep(ms: number, s?: Server): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
        if (s) s.wake = resolve;
      }),
      this.closedSignal,
    ]).finally(() => {
      clearTimeout(timer);
      if (s) s.wake = undefined;
    });
  }

  /** Waits for `p` at most `ms`; never rejects. */
  private async bounded(p: Promise<unknown>, ms = CLOSE_STEP_MS): Promise<void> {
    await within(p.catch(() => undefined), ms);
  }
}

/** Options of the connections RedisTransport creates: fail fast, reconnect forever. */
const CONNECTION_OPTIONS: RedisOptions = {
  // Commands in flight or queued when a connection drops are rejected, never resent: a
  // request is delivered at most once, and a blocked read is simply reissued.
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  enableOfflineQueue: true,
  retryStrategy: reconnectDelay,
  // How long a disconnect waits for a half-closed socket before destroying it (ioredis: 2 s,
  // kept even for a socket already gone, which holds the process that long after close()).
  disconnectTimeout: 300,
};

/** Reconnect / retry delay in ms before attempt `times` (1, 2, …): 50 ms doubling, capped at 2 s. */
function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(Math.max(times - 1, 0), 6), 2000);
}

/**
 * Rendezvous (highest random weight) choice of a server for a sticky key: every transport
 * with the same live set picks the same server, and when a server leaves only its keys move.
 */
export function pickSticky(key: string, servers: readonly ServerInfo[]): ServerInfo {
  let best = servers[0];
  let bestScore = -1;
  for (const s of servers) {
    const score = mix(hash(`${s.serverId}\u0000${key}`));
    if (score > bestScore || (score === bestScore && s.serverId < best.serverId)) {
      best = s;
      bestScore = score;
    }
  }
  return best;
}

/** murmur3's 32-bit finalizer: spreads FNV's low-entropy high bits. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function isCluster(conn: Redis | Cluster): conn is Cluster {
  return (conn as { isCluster?: boolean }).isCluster === true;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`RedisTransport: ${name} must be a positive number of ms (or count), got ${value}`);
  return value;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function copyInfo(info: ServerInfo): ServerInfo {
  return info.meta ? { ...info, meta: { ...info.meta } } : { ...info };
}

/** True when `p` resolves within `ms`, false when it does not (or rejects). The timer is cleared. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** An error message for a failed send; ioredis's own for a dropped connection is cryptic. */
function sendFailure(err: unknown): string {
  const message = messageOf(err);
  if (/max retries per request|Connection is closed/i.test(message)) return 'the connection to Redis dropped before it answered (the request may or may not have been queued)';
  return message;
}

function readVersion(): string {
  try {
    return String((JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
