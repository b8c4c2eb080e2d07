import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { TransportClosedError } from '../errors';
import { messageOf } from '../error-message';
import type { Logger } from '../logger';
import type {
  Address,
  CallOptions,
  RpcHandler,
  RpcServerHandle,
  RpcTransport,
  RpcValue,
  ServerInfo,
  TransportEvents,
  TransportGauges,
} from '../transport';
import { Caller, type CallerCounters } from './caller';
import { createRedis, duplicateRedis, quitRedis, reconnectDelay, type RedisClient } from './connection';
import { Consumer, type ConsumerCounters } from './consumer';
import { ConnectionHealth, within } from './health';
import { registryKeys, replyChannel, type RegistryKeys } from './keys';
import { CLOSE_STEP_MS, resolveTransportOptions, type RedisTransportOptions } from './options';
import { RedisRegistry } from './registry';

/** Counters of one {@link RedisTransport} since it was created, plus the two gauges. */
export interface RedisTransportStats extends CallerCounters, ConsumerCounters, TransportGauges {}

/** ms between two registry re-reads asked for by heartbeats of servers the cache does not hold: 1 000. */
const STALE_READ_MS = 1000;

/** Events of {@link RedisTransport}: the one {@link TransportEvents} of every transport with a registry cache. */
export type RedisTransportEvents = TransportEvents;

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
 *   rendezvous hashing of the key (sticky.ts, the rule InProcessTransport uses too): the same key goes to the same
 *   server while it lives, and only the keys of a server that leaves move.
 *
 * Each served server has its own blocking connection running `BLMPOP` over its own list and
 * its type's list (own list first; Redis < 7: `BLPOP` then `LPOP count`), taking up to
 * `min(64, maxConcurrent - running)` requests at once (options.ts `BATCH`: a burst larger
 * than that spreads over the servers blocked at once) and none while `running` is at `maxConcurrent`, so a busy or dead server takes no
 * new work. A popped request is never re-queued: delivery is at most once. Replies (protobuf `mqgate.rpc.Response`) are
 * published to the caller's reply channel `<prefix>rpc:reply:<transportId>`, read by the
 * transport's one subscriber connection. The requests of one event-loop turn for one list
 * are pushed in one command (still one list element each), and the commands of a turn on
 * the command connection (pushes, replies) are gathered and flushed in `setImmediate`, in one
 * socket write (connection.ts `corkedWrite`), without auto-pipelining's Pipeline per batch.
 *
 * **Deadlines** are absolute epoch ms (hosts' clocks must agree, e.g. NTP). The caller
 * rejects with DeadlineError at the deadline; a server drops unrun (and counts in
 * `expiredDropped`) a request whose deadline passed before it starts; a reply after the
 * deadline is dropped and counted in `lateReplies`.
 *
 * **Liveness.** Every `heartbeatInterval` ms (250) a transport publishes the ids of its
 * servers on `<prefix>registry:heartbeat`; every transport hears them. A server not heard
 * from for `heartbeatTimeout` ms (1 000) counts as dead long before its registry entry
 * expires: it leaves {@link servers} (`serverLeft`), new calls to it reject with
 * NoServerError at once, and calls in flight to it (by serverId or sticky key, or to its
 * type when no server of the type is left) reject with ServerLostError (code `NO_SERVER`,
 * "module unavailable: ..."). It is live again with its next heartbeat. So gates that
 * crash leave `servers('gate')` within about a second, which both the user index's
 * live-gate check (HD_online, duplicate login) and UserDirectory.counts (HD_count) read.
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
 * rejects with it at once, and so does a call that finds no live server while the registry
 * cannot be read (instead of NoServerError, which would read like misconfiguration). Servers retry their blocked reads with a capped backoff and keep
 * their registry entries refreshed once Redis is back.
 *
 * Events: `serverJoined` / `serverLeft` with the ServerInfo (a copy), when a server enters or
 * leaves this transport's cache (including its own servers).
 *
 * This class is the facade; the work is in caller.ts (pending calls, replies), consumer.ts
 * (blocking reads, invoke, drain), registry.ts, health.ts (connection health), keys.ts (every
 * key and channel name), connection.ts (the connection policy) and options.ts (defaults).
 *
 * @throws TypeError from the constructor when both `url` and `redis` are given; RangeError
 *   for a non-positive `defaultTimeout`, `registryTtl`, `registryInterval` or `maxConcurrent`,
 *   a fractional `maxConcurrent`, or `registryInterval >= registryTtl`.
 */
export class RedisTransport extends EventEmitter<RedisTransportEvents> implements RpcTransport {
  /** Call timeout, ms, of a call that gives none. */
  readonly defaultTimeout: number;
  /** Put before every key and channel name. */
  readonly prefix: string;
  /** ms a registry entry lives without a refresh. */
  readonly registryTtl: number;
  /** ms between registry refreshes and re-reads. */
  readonly registryInterval: number;
  /** Calls one server runs at once. */
  readonly maxConcurrent: number;
  /** ms between heartbeats of this transport's servers. */
  readonly heartbeatInterval: number;
  /** ms without a heartbeat after which another transport's server counts as dead. */
  readonly heartbeatTimeout: number;
  /** Random id of this transport: names its reply channel. */
  readonly id: string;
  /** The Pub/Sub channel replies to this transport's calls arrive on. */
  readonly replyChannel: string;
  /** The registry's keys and channel. */
  readonly registryKeys: RegistryKeys;

  private readonly command: RedisClient;
  private readonly subscriber: RedisClient;
  private readonly owned: boolean;
  private readonly logger: Logger;
  private readonly health: ConnectionHealth;
  private readonly registry: RedisRegistry;
  private readonly caller: Caller;
  private readonly consumer: Consumer;
  private readonly counters: CallerCounters & ConsumerCounters = {
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
  private loaded = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly readyPromise: Promise<void>;
  private timer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private ticking = false;
  /** A tick was asked for while one ran: run another once it ends (a reconnect must not be lost). */
  private tickAgain = false;
  /** Local ms of the last re-read a heartbeat of an unknown server asked for. */
  private staleReadAt = 0;
  private signalClosed!: () => void;
  private readonly closedSignal = new Promise<void>((resolve) => (this.signalClosed = resolve));
  private readonly onCommandReady = () => {
    this.health.recovered('command');
    this.caller.wake();
    // Back after an outage (Redis may have restarted empty): write our entries again and re-read now.
    void this.tick();
  };

  /** @throws TypeError, RangeError: see options.ts `resolveTransportOptions`. */
  constructor(options: RedisTransportOptions = {}) {
    super();
    const o = resolveTransportOptions(options);
    this.defaultTimeout = o.defaultTimeout;
    this.registryTtl = o.registryTtl;
    this.registryInterval = o.registryInterval;
    this.maxConcurrent = o.maxConcurrent;
    this.heartbeatInterval = o.heartbeatInterval;
    this.heartbeatTimeout = o.heartbeatTimeout;
    this.prefix = o.prefix;
    this.logger = o.logger;
    this.id = randomBytes(8).toString('hex');
    this.replyChannel = replyChannel(this.prefix, this.id);
    this.registryKeys = registryKeys(this.prefix);

    this.owned = !options.redis;
    this.command = options.redis ?? createRedis(options.url);
    this.health = new ConnectionHealth(this.id, this.logger, this.command);
    if (this.owned) this.health.watch(this.command, 'command');
    this.command.on('ready', this.onCommandReady);

    this.registry = new RedisRegistry(
      this.command,
      this.prefix,
      this.registryTtl,
      {
        joined: (info) => this.emitSafely('serverJoined', info),
        left: (info) => this.emitSafely('serverLeft', info),
        lost: (info, why) => this.caller.lost(info, why),
      },
      this.heartbeatTimeout,
    );
    const shared = { command: this.command, prefix: this.prefix, registry: this.registry, health: this.health, counters: this.counters };
    this.caller = new Caller({
      ...shared,
      callerId: `${hostname()}/${process.pid}/${this.id}`,
      replyChannel: this.replyChannel,
      defaultTimeout: this.defaultTimeout,
      loaded: () => this.loaded,
    });
    this.consumer = new Consumer({
      ...shared,
      logger: this.logger,
      maxConcurrent: this.maxConcurrent,
      heartbeatInterval: this.heartbeatInterval,
      ready: () => this.readyPromise,
      closed: this.closedSignal,
      isClosed: () => this.closed,
      duplicate: (role) => this.duplicate(role),
      sleep: (ms, onWake) => this.sleep(ms, onWake),
    });

    this.subscriber = this.duplicate('subscriber');
    const replyChannelBytes = Buffer.from(this.replyChannel);
    const eventsChannel = Buffer.from(this.registryKeys.events);
    const heartbeatChannel = Buffer.from(this.registryKeys.heartbeat);
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (channel.equals(replyChannelBytes)) this.caller.onReply(message);
      else if (channel.equals(heartbeatChannel)) {
        if (this.registry.onHeartbeat(message.toString())) this.readStale();
      } else if (channel.equals(eventsChannel)) this.registry.onEvent(message.toString());
    });
    // Events may have been missed while the subscriber was away: re-read the registry.
    this.subscriber.on('ready', () => {
      if (this.loaded) this.registry.listening(Date.now());
      void this.tick();
    });
    // Heartbeats cannot be heard while it is away: nobody is judged by them meanwhile.
    this.subscriber.on('close', () => this.registry.listening(undefined));

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

  /** True while Redis is reachable: the command connection ready, no command, subscriber or registry connection failing (see RpcTransport.healthy). */
  healthy(): boolean {
    return !this.closed && this.health.reachable();
  }

  /** Counters since creation, plus `pending` calls and `running` handlers now. */
  stats(): RedisTransportStats {
    return { ...this.counters, pending: this.caller.size, running: this.consumer.running };
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
    return this.consumer.serve(info, handler);
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
    if (this.closed) return Promise.reject(new TransportClosedError());
    return this.caller.call(to, fn, args, opts);
  }

  /**
   * Fire and forget: resolves once Redis has the request (the server drops it unrun if it
   * does not start within `defaultTimeout` ms). Rejects with NoServerError at once when no
   * live server matches, RedisUnavailableError when it could not be handed over within
   * `defaultTimeout` ms, TransportClosedError on close().
   */
  callNR(to: Address, fn: string, args: RpcValue[]): Promise<void> {
    if (this.closed) return Promise.reject(new TransportClosedError());
    return this.caller.callNR(to, fn, args);
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

  /** Subscribes and reads the registry, retrying with a capped backoff until it works or the transport closes. */
  private async init(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      try {
        await this.subscriber.subscribe(this.registryKeys.events, this.registryKeys.heartbeat, this.replyChannel);
        await this.registry.load();
        if (this.closed) break;
        this.loaded = true;
        this.registry.listening(Date.now());
        this.health.recovered('registry');
        this.timer = setInterval(() => void this.tick(), this.registryInterval);
        this.heartbeatTimer = setInterval(() => this.beat(), this.heartbeatInterval);
        this.caller.wake();
        return;
      } catch (err) {
        attempt++;
        this.health.noteFailure('registry', err);
        await this.sleep(reconnectDelay(attempt));
      }
    }
    throw new TransportClosedError();
  }

  /**
   * A heartbeat named a server the cache does not hold: re-reads the registry (at most once
   * per {@link STALE_READ_MS}), so a missed join costs a heartbeat, not a registryInterval.
   */
  private readStale(): void {
    const now = Date.now();
    if (!this.loaded || this.closed || now - this.staleReadAt < STALE_READ_MS) return;
    this.staleReadAt = now;
    this.registry.load().catch((err: unknown) => this.health.noteFailure('registry', err));
  }

  /** Refreshes this transport's servers' entries, then re-reads the registry. Never rejects. */
  private async tick(): Promise<void> {
    if (this.closed || !this.loaded) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    try {
      this.registry.pruneExpired();
      let failure: unknown;
      const work = (async () => {
        await this.consumer.refreshAll();
        await this.registry.load();
      })().catch((err: unknown) => {
        failure = err;
        throw err;
      });
      if (!(await within(work, this.registryTtl))) throw failure ?? new Error(`registry refresh got no answer within ${this.registryTtl} ms`);
      this.health.recovered('registry');
    } catch (err) {
      this.health.noteFailure('registry', err);
    } finally {
      this.ticking = false;
    }
    if (this.tickAgain) {
      this.tickAgain = false;
      void this.tick();
    }
  }

  /** Every `heartbeatInterval`: publishes this transport's servers' heartbeat, and marks down the servers not heard from. */
  private beat(): void {
    if (this.closed) return;
    const ids = this.consumer.beating();
    if (ids.length > 0 && this.command.status === 'ready') {
      this.command.publish(this.registryKeys.heartbeat, JSON.stringify(ids)).catch(() => undefined);
    }
    this.registry.sweep(this.heartbeatInterval);
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.health.closed = true;
    this.signalClosed();
    if (this.timer) clearInterval(this.timer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.consumer.stopAll();
    this.caller.closeAll();
    this.command.off('ready', this.onCommandReady);
    await quitRedis(this.subscriber, CLOSE_STEP_MS);
    if (this.owned) await quitRedis(this.command, CLOSE_STEP_MS);
  }

  /** A subscriber or blocking connection (connection.ts `duplicateRedis`), watched under `role`. */
  private duplicate(role: string): RedisClient {
    const conn = duplicateRedis(this.command);
    this.health.watch(conn, role);
    return conn;
  }

  private emitSafely(event: keyof RedisTransportEvents, info: ServerInfo): void {
    try {
      this.emit(event, info);
    } catch (err) {
      this.logger.error({ event, serverId: info.serverId, error: messageOf(err) }, 'a server event listener threw');
    }
  }

  /** Waits `ms`, or less if the transport closes or the function given to `onWake` is called. */
  private sleep(ms: number, onWake?: (wake: (() => void) | undefined) => void): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
        onWake?.(resolve);
      }),
      this.closedSignal,
    ]).finally(() => {
      clearTimeout(timer);
      onWake?.(undefined);
    });
  }
}
