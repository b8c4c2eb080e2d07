// Just over 400 lines: the NatsTransport facade (serve, call, callNR, registry wiring, outage handling)
// is one lifecycle; subjects, headers and the registry live in their own files.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import {
  RpcError,
  TransportClosedError,
  type Address,
  type CallOptions,
  type Logger,
  type RpcHandler,
  type RpcServerHandle,
  type RpcTransport,
  type RpcValue,
  type ServerInfo,
  type TransportEvents,
  type TransportGauges,
} from '@mqgate/rpc';
import { messageOf } from '@mqgate/rpc/internal';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Caller, type CallerCounters } from './caller';
import { NatsUnavailableError } from './errors';
import { resolveNatsOptions, type NatsTransportOptions, type ResolvedNatsOptions } from './options';
import { isProbeReply, LivenessProbe } from './liveness';
import { Outbox } from './outbox';
import { NatsRegistry, type RegistryEvent } from './registry';
import { NatsServer, type ServerCounters } from './server';
import { subjects, type Subjects } from './subjects';

/** Counters of one {@link NatsTransport} since it was created, plus the two gauges. */
export interface NatsTransportStats extends CallerCounters, ServerCounters, TransportGauges {}

/** Events of {@link NatsTransport}: the one {@link TransportEvents} of every transport with a registry cache. */
export type NatsTransportEvents = TransportEvents;

/** Bound on each NATS step of close(), ms. */
const CLOSE_STEP_MS = 1_000;

/**
 * An {@link RpcTransport} over NATS core (no JetStream), on `@nats-io/transport-node` 3, the
 * maintained Node client of nats.js v3 (the `nats` 2.x package is in maintenance and gets
 * fixes only; v3 splits the client into modules so this package loads only the core).
 * mqant's own RPC runs on NATS (rpc/base/nats_{client,server}.go); unlike mqant, servers of a
 * type share a queue group, so a call to a type needs no node choice in the caller.
 *
 * **Calls** (subjects.ts): a request (protobuf `mqgate.rpc.Request`, rpc-codec.ts) is
 * published with a reply subject `<prefix>.reply.<transportId>.<n>` and header
 * `Mqgate-Deadline` (absolute epoch ms) to
 * - `<prefix>.rpc.type.<type>`, queue group `<type>`: NATS gives it to one live server of
 *   the type (competing consumers);
 * - `<prefix>.rpc.srv.<serverId>` for a `type@id` address, and for a sticky key (the server
 *   picked by rendezvous hashing over the registry, sticky.ts, as on every transport).
 * The reply (`mqgate.rpc.Response`) settles the call. NATS answers "no responders" (503) at
 * once when nothing subscribes: the call rejects with NoServerError (`Service(type:x) not
 * found`) at once, and a server whose own subject has no subscriber (a crashed process) is
 * dropped from the registry (a sticky call then goes to the next server). callNR is a plain
 * publish without reply subject (delivery at most once; rejects only when the registry has no
 * server for the address). Replies of the handler errors carry their code.
 *
 * **Deadlines.** The caller rejects with DeadlineError at its deadline; a server drops unrun
 * a request whose deadline passed before it could start (counted in `expiredDropped`).
 * Hosts' clocks must agree (NTP).
 *
 * **Busy servers.** A server at `maxConcurrent` leaves its type's queue group (announcing
 * `busy`), so new work of the type goes to the others, and rejoins at half. When every
 * server of the type is busy, a call waits (re-sent when one announces `free`) until its
 * deadline, as it would in a Redis list.
 *
 * **Registry** (registry.ts): each server announces `join`, a heartbeat every
 * `registryInterval` ms, `busy`/`free` and `leave` (a clean stop: gone at once everywhere) on
 * `<prefix>.reg.ev`; a new transport asks `<prefix>.reg.who` and every server answers. An
 * entry without a heartbeat for `registryTtl` ms (a crashed server) is dropped; calls to a
 * crashed server fail at once anyway, by no-responders. Meta: `host`, `pid`, `startedAt`
 * (ISO time), overridden by `info.meta`. `serverJoined` / `serverLeft` events follow the cache.
 *
 * **Dead servers** (a SIGKILLed or crashed module process). New calls to it fail at once by
 * no-responders. Calls in flight to it reject with ServerLostError (code `NO_SERVER`, `module
 * unavailable: server x@1 (type x) is gone (...) while call f was in flight; it may or may not
 * have run`) within about `probeInterval` ms of the NATS server seeing its socket close, not
 * at their deadlines: every `probeInterval` ms the servers holding calls older than that get a
 * probe on their own subject, answered by no-responders once the process is gone (liveness.ts);
 * a server whose registry entry expires (`registryTtl`, a hung process) fails its calls the
 * same way. Calls by serverId or sticky key fail with it; calls to its type fail when no
 * listed server of the type is left (with another one alive, a call to the type may be
 * running there, so those wait for their deadline, as on RedisTransport).
 *
 * **Outages.** While NATS is unreachable, calls reject at once with {@link NatsUnavailableError}
 * (code UNAVAILABLE, "NATS is unreachable (urls): …"), and calls in flight when the connection
 * drops reject with it too (their replies may be lost); nothing waits past its deadline. The
 * client reconnects forever (every `reconnectTimeWait` ms, over every URL of `servers`),
 * resubscribes, and the transport re-reads the registry. A first connection that fails is
 * retried the same way; `ready()` resolves once connected and the registry was read.
 *
 * Messages are limited by the NATS server's `max_payload` (1 MiB by default): a larger
 * request rejects with code ENCODE, a larger reply reaches the caller as an ENCODE error.
 *
 * @throws RangeError, TypeError from the constructor for invalid options (options.ts).
 */
export class NatsTransport extends EventEmitter<NatsTransportEvents> implements RpcTransport {
  readonly defaultTimeout: number;
  /** Random id of this transport (names its reply subjects). */
  readonly id = randomBytes(8).toString('hex');
  readonly subjects: Subjects;
  private readonly o: ResolvedNatsOptions;
  private readonly logger: Logger;
  private readonly registry: NatsRegistry;
  private readonly caller: Caller;
  private readonly probe: LivenessProbe;
  /** Requests and replies of this turn, written together (outbox.ts). */
  private readonly outbox = new Outbox(() => this.nc);
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly servers_ = new Map<string, NatsServer>();
  private readonly counters: CallerCounters & ServerCounters = {
    calls: 0,
    callsNR: 0,
    replies: 0,
    deadlines: 0,
    lateReplies: 0,
    noResponders: 0,
    served: 0,
    expiredDropped: 0,
    handlerErrors: 0,
    malformed: 0,
  };
  private nc: NatsConnection | undefined;
  private whoSub: Subscription | undefined;
  private state: 'connecting' | 'up' | 'down' = 'connecting';
  private lastError = 'not connected yet';
  private closed = false;
  private closing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly readyPromise: Promise<void>;
  /** Woken on every state change (connected, down, closed). */
  private waiters: (() => void)[] = [];

  constructor(options: NatsTransportOptions = {}) {
    super();
    this.o = resolveNatsOptions(options);
    this.defaultTimeout = this.o.defaultTimeout;
    this.logger = this.o.logger;
    this.subjects = subjects(this.o.prefix);
    this.registry = new NatsRegistry(this.o.registryTtl, {
      joined: (info) => this.emitSafely('serverJoined', info),
      left: (info) => this.emitSafely('serverLeft', info),
      freed: (type) => this.caller.freed(type),
      lost: (info, why) => this.caller.lost(info, why),
    });
    this.caller = new Caller({
      nc: () => this.nc,
      outbox: this.outbox,
      subjects: this.subjects,
      registry: this.registry,
      replyPrefix: this.subjects.replies(this.id),
      callerId: `${hostname()}/${process.pid}/${this.id}`,
      counters: this.counters,
      unavailable: () => this.unavailable(),
    });
    this.probe = new LivenessProbe(
      {
        nc: () => (this.state === 'up' ? this.nc : undefined),
        subjects: this.subjects,
        registry: this.registry,
        replyPrefix: this.subjects.replies(this.id),
        targets: (sentBefore) => this.caller.inFlightTargets(sentBefore),
      },
      this.o.probeInterval,
    );
    this.readyPromise = this.init();
    this.readyPromise.catch(() => undefined);
  }

  /** Resolves once connected and the registry was read; rejects with TransportClosedError if closed first. */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** True while connected to NATS (see RpcTransport.healthy). */
  healthy(): boolean {
    return !this.closed && this.state === 'up';
  }

  stats(): NatsTransportStats {
    let running = 0;
    for (const s of this.servers_.values()) running += s.running;
    return { ...this.counters, pending: this.caller.size, running };
  }

  /**
   * Starts serving `info.serverId` and `info.moduleType` (waits for {@link ready}).
   * @throws RpcError DUPLICATE_SERVER when this transport already serves that id;
   *   TransportClosedError after close(); TypeError for an empty serverId or moduleType.
   */
  async serve(info: ServerInfo, handler: RpcHandler): Promise<RpcServerHandle> {
    if (this.closed) throw new TransportClosedError();
    if (!info.serverId || !info.moduleType) throw new TypeError('NatsTransport.serve: serverId and moduleType must be non-empty');
    if (this.servers_.has(info.serverId)) throw new RpcError(`server id ${info.serverId} is already serving`, 'DUPLICATE_SERVER');
    await this.readyPromise;
    if (this.servers_.has(info.serverId)) throw new RpcError(`server id ${info.serverId} is already serving`, 'DUPLICATE_SERVER');
    const meta = { host: hostname(), pid: String(process.pid), startedAt: new Date().toISOString(), ...info.meta };
    const full: ServerInfo = { serverId: info.serverId, moduleType: info.moduleType, meta };
    const nc = this.nc as NatsConnection;
    const server = new NatsServer(full, handler, nc, this.outbox, this.subjects, this.o.maxConcurrent, this.counters, (ev) => this.announce(ev));
    this.servers_.set(full.serverId, server);
    this.registry.apply({ op: 'join', info: full }, true);
    server.start();
    this.whoSub ??= nc.subscribe(this.subjects.who, {
      callback: (_e, m) => {
        m.respond(JSON.stringify([...this.servers_.values()].map((s) => s.entry())));
      },
    });
    await nc.flush().catch(() => undefined);
    return {
      info: full,
      close: () => this.stopServer(server, true),
    };
  }

  /**
   * Calls `fn` at `to`. Rejects with NoServerError at once when no live server matches,
   * DeadlineError at the deadline (`opts.timeout`, default `defaultTimeout` ms),
   * NatsUnavailableError (UNAVAILABLE) at once while NATS is unreachable, TransportClosedError
   * on close(), EncodeError (ENCODE) for an argument that cannot be encoded or a request over
   * max_payload, or an RpcError with the handler's code and message.
   */
  call(to: Address, fn: string, args: RpcValue[], opts?: CallOptions): Promise<RpcValue> {
    const timeout = opts?.timeout ?? this.defaultTimeout;
    // Connected: the caller's own promise, no wait and no promise hop for it.
    if (this.state === 'up' && !this.closed) return this.caller.call(to, fn, args, timeout);
    return this.usable(timeout).then(() => this.caller.call(to, fn, args, timeout));
  }

  /** Fire and forget (a plain publish). Rejects with NoServerError, NatsUnavailableError or TransportClosedError as {@link call}. */
  async callNR(to: Address, fn: string, args: RpcValue[]): Promise<void> {
    if (this.state !== 'up' || this.closed) await this.usable(this.defaultTimeout);
    this.caller.callNR(to, fn, args, this.defaultTimeout);
  }

  /** Live servers of `moduleType`, or all, sorted by serverId (copies): empty before {@link ready}. */
  servers(moduleType?: string): ServerInfo[] {
    return this.registry.list(moduleType);
  }

  /**
   * Announces `leave` for this transport's servers, rejects pending calls with
   * TransportClosedError, and closes the connection (each step bounded by 1 s). Running
   * handlers are not awaited (close each server's handle first for that). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.wake();
    if (this.timer) clearInterval(this.timer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    await Promise.all([...this.servers_.values()].map((s) => this.stopServer(s, false)));
    this.caller.closeAll();
    this.outbox.flush();
    const nc = this.nc;
    this.nc = undefined;
    if (nc && !nc.isClosed()) {
      await within(nc.flush(), CLOSE_STEP_MS);
      await within(nc.close(), CLOSE_STEP_MS);
    }
  }

  private async stopServer(s: NatsServer, waitRunning: boolean): Promise<void> {
    if (this.servers_.get(s.info.serverId) !== s) return;
    this.servers_.delete(s.info.serverId);
    this.registry.drop(s.info.serverId);
    const stopped = s.stop(waitRunning);
    if (this.servers_.size === 0) {
      this.whoSub?.unsubscribe();
      this.whoSub = undefined;
    }
    this.outbox.flush();
    if (this.nc && !this.nc.isClosed()) await within(this.nc.flush(), CLOSE_STEP_MS);
    await stopped;
  }

  /** Connects (retrying every reconnectTimeWait ms until it works or close()), subscribes, reads the registry. */
  private async init(): Promise<void> {
    while (!this.closed) {
      let nc: NatsConnection;
      try {
        nc = await connect({
          name: `mqgate ${hostname()}/${process.pid}`,
          ...this.o.connection,
          servers: this.o.servers,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.o.reconnectTimeWait,
        });
      } catch (err) {
        this.setState('down', messageOf(err));
        await this.pause(this.o.reconnectTimeWait);
        continue;
      }
      if (this.closed) {
        await nc.close().catch(() => undefined);
        break;
      }
      this.nc = nc;
      const tailAt = this.subjects.replies(this.id).length + 1;
      nc.subscribe(`${this.subjects.replies(this.id)}.*`, {
        callback: (_e, m) => (isProbeReply(m.subject.slice(tailAt)) ? this.probe.onReply(m.subject.slice(tailAt), m) : this.caller.onReply(m)),
      });
      nc.subscribe(this.subjects.events, { callback: (_e, m) => this.onEvent(m.data) });
      void this.watch(nc);
      await this.discover(nc);
      this.timer = setInterval(() => this.tick(), this.o.registryInterval);
      this.timer.unref();
      this.probeTimer = setInterval(() => this.probe.tick(), this.o.probeInterval);
      this.probeTimer.unref();
      this.setState('up');
      return;
    }
    throw new TransportClosedError();
  }

  /** Follows the connection's status: down on disconnect (failing calls in flight), up again after reconnect. */
  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnecting' || s.type === 'staleConnection') {
        if (this.state !== 'down') this.logger.warn({ transport: this.id, status: s.type }, 'NATS connection lost; calls fail until it is back');
        this.setState('down', `connection lost (${s.type})`);
        this.caller.failAll(this.unavailable() as RpcError);
      } else if (s.type === 'reconnect') {
        await this.discover(nc);
        this.logger.info({ transport: this.id, server: s.server }, 'NATS connection back');
        this.setState('up');
      } else if (s.type === 'error') {
        this.lastError = messageOf(s.error);
      }
    }
  }

  /** Asks every live server for its entry; resolves `discoveryStall` ms after the last answer, at once with no server. */
  private async discover(nc: NatsConnection): Promise<void> {
    try {
      const answers = await nc.requestMany(this.subjects.who, undefined, { strategy: 'stall', stall: this.o.discoveryStall, maxWait: 2_000 });
      for await (const m of answers) {
        if (m.headers?.code === 503 || m.data.length === 0) break;
        for (const ev of JSON.parse(new TextDecoder().decode(m.data)) as RegistryEvent[])
          this.registry.apply(ev, this.servers_.has(ev.info?.serverId));
      }
    } catch {
      // no responders (nobody serves yet) or the connection dropped: the events fill the cache
    }
  }

  private onEvent(data: Uint8Array): void {
    let ev: RegistryEvent;
    try {
      ev = JSON.parse(new TextDecoder().decode(data)) as RegistryEvent;
    } catch {
      return;
    }
    const local = this.servers_.has(ev.info?.serverId);
    if (ev.op === 'leave' && local) return; // an echo of a leave of an earlier server under this id
    this.registry.apply(ev, local);
  }

  private announce(ev: RegistryEvent): void {
    if (ev.op === 'busy' || ev.op === 'free') this.registry.apply(ev, true);
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    try {
      nc.publish(this.subjects.events, JSON.stringify(ev));
    } catch {
      // the heartbeat after the reconnect announces it again
    }
  }

  private tick(): void {
    if (this.state === 'up') for (const s of this.servers_.values()) this.announce(s.entry());
    if (this.state === 'up') this.registry.prune();
  }

  /** Waits until calls can be sent: resolves when connected; rejects at once while NATS is down, on close, or after `ms`. */
  private async usable(ms: number): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      if (this.closed) throw new TransportClosedError();
      if (this.state === 'up') return;
      if (this.state === 'down') throw this.unavailable();
      const left = end - Date.now();
      if (left <= 0) throw new NatsUnavailableError(this.o.servers, `not connected within ${ms} ms (${this.lastError})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private unavailable(): RpcError | undefined {
    if (this.closed) return new TransportClosedError();
    return this.state === 'up' ? undefined : new NatsUnavailableError(this.o.servers, this.lastError);
  }

  private setState(state: 'up' | 'down', error?: string): void {
    this.state = state;
    if (error) this.lastError = error;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private emitSafely(event: keyof NatsTransportEvents, info: ServerInfo): void {
    try {
      this.emit(event, info);
    } catch (err) {
      this.logger.error({ event, serverId: info.serverId, error: messageOf(err) }, 'a server event listener threw');
    }
  }
}

/** Waits for `p` at most `ms`; never rejects. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
