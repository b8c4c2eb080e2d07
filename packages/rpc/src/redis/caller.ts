import { DeadlineError, fromWireError, NoServerError, RpcError, TransportClosedError } from '../errors';
import { DeadlineSweep } from '../deadlines';
import { messageOf } from '../error-message';
import { decodeResponse, encodeRequest } from '../rpc-codec';
import { pickSticky } from '../sticky';
import { describeAddress, type Address, type CallOptions, type RpcValue, type ServerInfo } from '../transport';
import { corkedWrite, type RedisClient } from './connection';
import { ServerLostError } from './errors';
import type { ConnectionHealth } from './health';
import { rpcListKeys } from './keys';
import { LIST_TTL_SLACK } from './options';
import type { RedisRegistry } from './registry';

/**
 * KEYS list; ARGV ms, then the requests: RPUSH them (one list element each, in order), and
 * make the list live at least that long.
 */
const PUSH = `redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
local want = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end
return 1`;

interface PushScript {
  mqgateRpcPushMany(key: string, ttlMs: number, ...requests: Buffer[]): Promise<number>;
}

/** Most requests one push carries (Lua's `unpack` is bounded by the C stack, about 8,000). */
const MAX_PUSH = 256;

/** The requests of this turn for one list, pushed in one command. */
interface Batch {
  key: string;
  ids: number[];
  requests: Buffer[];
  /** ms the list must live: the longest timeout in the batch plus LIST_TTL_SLACK. */
  ttl: number;
}

interface Pending {
  resolve(value: RpcValue): void;
  reject(err: RpcError): void;
  fn: string;
  timeout: number;
  /** The request was handed to Redis. */
  sent: boolean;
  /** callNR: settles when the push is acknowledged, never by a reply. */
  nr: boolean;
  /** The server it was routed to (serverId or sticky key), if one. */
  serverId?: string;
  /** The module type it was routed to. */
  moduleType?: string;
}

/** Where a call goes: its list, and the server or type that list belongs to. */
interface Route {
  key: string;
  moduleType: string;
  serverId?: string;
}

/** The counters of the caller side, since the transport was created. */
export interface CallerCounters {
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
  /** Requests or replies that did not decode. */
  malformed: number;
}

/** What the caller side needs of its transport. */
export interface CallerContext {
  command: RedisClient;
  prefix: string;
  registry: RedisRegistry;
  health: ConnectionHealth;
  counters: CallerCounters;
  /** `host/pid/transportId`, sent with every request. */
  callerId: string;
  /** Where this transport's replies arrive. */
  replyChannel: string;
  defaultTimeout: number;
  /** True once the registry was read: calls are routed only then. */
  loaded(): boolean;
}

/**
 * The caller side of a RedisTransport: routes a call to a request list (registry cache;
 * sticky keys by {@link pickSticky}), pushes it once the registry is loaded and the command
 * connection is ready, and settles it by its reply, its deadline or a failed send.
 */
export class Caller {
  private readonly pending = new Map<number, Pending>();
  /** Every pending call's deadline, on one timer. */
  private readonly deadlines = new DeadlineSweep<number>((id) => this.expire(id));
  /** Calls waiting for the registry's first load or for the command connection. */
  private readonly waiters = new Map<number, () => void>();
  private readonly push: PushScript;
  private nextId = 0;
  /** Requests of this turn by list, pushed together in setImmediate ({@link flush}). */
  private batches = new Map<string, Batch>();
  private flushScheduled = false;
  private readonly flushNow = () => this.flush();

  constructor(private readonly ctx: CallerContext) {
    ctx.command.defineCommand('mqgateRpcPushMany', { numberOfKeys: 1, lua: PUSH });
    this.push = ctx.command as unknown as PushScript;
  }

  /** Calls waiting for a reply (or to be sent) now. */
  get size(): number {
    return this.pending.size;
  }

  /** See RedisTransport.call. */
  call(to: Address, fn: string, args: RpcValue[], opts?: CallOptions): Promise<RpcValue> {
    return new Promise<RpcValue>((resolve, reject) => {
      this.ctx.counters.calls++;
      const timeout = Math.max(0, opts?.timeout ?? this.ctx.defaultTimeout);
      const id = this.newId();
      const p: Pending = { resolve, reject, fn, timeout, sent: false, nr: false };
      this.pending.set(id, p);
      this.deadlines.add(id, timeout);
      this.dispatch(id, p, to, args, Date.now() + timeout, this.ctx.replyChannel);
    });
  }

  /** See RedisTransport.callNR. */
  callNR(to: Address, fn: string, args: RpcValue[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.ctx.counters.callsNR++;
      const timeout = this.ctx.defaultTimeout;
      const id = this.newId();
      const p: Pending = { resolve: () => resolve(), reject, fn, timeout, sent: false, nr: true };
      this.pending.set(id, p);
      this.deadlines.add(id, timeout);
      this.dispatch(id, p, to, args, Date.now() + timeout, '');
    });
  }

  /** Handles a message of the reply channel: settles its call, or counts it late or malformed. */
  onReply(bytes: Buffer): void {
    let res;
    try {
      res = decodeResponse(bytes);
    } catch {
      this.ctx.counters.malformed++;
      return;
    }
    const p = this.pending.get(res.id);
    if (!p || p.nr) {
      this.ctx.counters.lateReplies++;
      return;
    }
    this.ctx.counters.replies++;
    if (res.error) this.settle(res.id, fromWireError(res.error));
    else this.settle(res.id, undefined, res.result ?? null);
  }

  /** Runs waiting calls whose condition may now hold (each re-queues itself if not). */
  wake(): void {
    if (this.waiters.size === 0) return;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const [id, run] of waiting) if (this.pending.has(id)) run();
  }

  /** Rejects every pending call with TransportClosedError (close). */
  closeAll(): void {
    for (const [id] of [...this.pending]) this.settle(id, new TransportClosedError());
    this.waiters.clear();
    this.batches.clear(); // settled above: nothing of them is pushed after close
  }

  private newId(): number {
    do {
      this.nextId = (this.nextId + 1) >>> 0;
    } while (this.nextId === 0 || this.pending.has(this.nextId));
    return this.nextId;
  }

  /** Routes and encodes a call once the registry is loaded, then sends it. */
  private dispatch(id: number, p: Pending, to: Address, args: RpcValue[], deadline: number, replyTo: string): void {
    if (!this.ctx.loaded()) {
      this.waiters.set(id, () => this.dispatch(id, p, to, args, deadline, replyTo));
      return;
    }
    let route: Route;
    let bytes: Buffer;
    try {
      route = this.route(to, p.fn);
      bytes = encodeRequest({ id, fn: p.fn, args, replyTo, deadline, caller: this.ctx.callerId });
    } catch (err) {
      this.settle(id, err instanceof RpcError ? err : new RpcError(messageOf(err), 'ENCODE'));
      return;
    }
    p.serverId = route.serverId;
    p.moduleType = route.moduleType;
    this.send(id, p, route.key, bytes);
  }

  /**
   * Queues the request for this turn's push once the command connection is ready: the
   * requests of one turn for one list go in one command (one list element each), and the
   * commands of the turn in one socket write.
   */
  private send(id: number, p: Pending, key: string, bytes: Buffer): void {
    if (this.ctx.command.status !== 'ready') {
      this.waiters.set(id, () => this.send(id, p, key, bytes));
      return;
    }
    p.sent = true;
    let batch = this.batches.get(key);
    if (!batch || batch.ids.length >= MAX_PUSH) {
      if (batch) this.pushBatch(batch);
      batch = { key, ids: [], requests: [], ttl: 0 };
      this.batches.set(key, batch);
    }
    batch.ids.push(id);
    batch.requests.push(bytes);
    if (p.timeout + LIST_TTL_SLACK > batch.ttl) batch.ttl = p.timeout + LIST_TTL_SLACK;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
  }

  /** Pushes the batches of this turn, in one socket write. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.batches.size === 0) return;
    const batches = this.batches;
    this.batches = new Map();
    corkedWrite(this.ctx.command, () => {
      for (const batch of batches.values()) this.pushBatch(batch);
    });
  }

  private pushBatch(batch: Batch): void {
    if (this.batches.get(batch.key) === batch) this.batches.delete(batch.key);
    // A call settled while queued (its deadline passed in the same turn) is not pushed: no one waits for its reply.
    if (batch.ids.some((id) => !this.pending.has(id))) {
      const keep = batch.ids.map((id) => this.pending.has(id));
      batch = { ...batch, ids: batch.ids.filter((_, i) => keep[i]), requests: batch.requests.filter((_, i) => keep[i]) };
      if (batch.ids.length === 0) return;
    }
    this.push.mqgateRpcPushMany(batch.key, batch.ttl, ...batch.requests).then(
      () => {
        for (const id of batch.ids) if (this.pending.get(id)?.nr) this.settle(id, undefined);
      },
      (err: unknown) => {
        const why = sendFailure(err);
        for (const id of batch.ids) {
          const p = this.pending.get(id);
          if (!p) continue;
          this.ctx.counters.unsent++;
          this.settle(id, this.ctx.health.unavailable(`${p.nr ? 'callNR' : 'call'} ${p.fn} failed to send: ${why}`));
        }
      },
    );
  }

  /**
   * Settles the calls in flight to a server that died (`why` says how it was noticed): those
   * routed to it by serverId or sticky key, and those to its module type when no live server
   * of the type is left (one of them may be running a call to the type, so those wait).
   * With ServerLostError, or RedisUnavailableError when this transport cannot reach Redis
   * (then the server may be fine, and the registry is what cannot be read).
   */
  lost(info: ServerInfo, why: string): void {
    const typeGone = this.ctx.registry.live(info.moduleType).length === 0;
    for (const [id, p] of [...this.pending]) {
      if (p.nr || !p.sent) continue;
      if (p.serverId === undefined ? !(typeGone && p.moduleType === info.moduleType) : p.serverId !== info.serverId) continue;
      const what = `${info.serverId} (type ${info.moduleType})`;
      this.settle(
        id,
        this.ctx.health.reachable()
          ? new ServerLostError(`module unavailable: server ${what} ${why} while call ${p.fn} was in flight; it may or may not have run`)
          : this.ctx.health.unavailable(`call ${p.fn} to ${what} got no reply and the registry cannot be read`),
      );
    }
  }

  /**
   * The list a call goes to.
   * @throws NoServerError; RedisUnavailableError when no live server is known and Redis cannot be reached.
   */
  private route(to: Address, fn: string): Route {
    const { registry, prefix } = this.ctx;
    if (to.serverId !== undefined) {
      const info = registry.get(to.serverId);
      if (!info) throw this.noServer(to.serverId, fn);
      return { key: rpcListKeys(prefix, info.moduleType, info.serverId).server, moduleType: info.moduleType, serverId: info.serverId };
    }
    if (to.moduleType === undefined) throw new NoServerError(describeAddress(to));
    const live = registry.live(to.moduleType);
    if (live.length === 0) throw this.noServer(to.moduleType, fn);
    if (to.key === undefined) return { key: rpcListKeys(prefix, to.moduleType, '').type, moduleType: to.moduleType };
    const chosen = pickSticky(to.key, live);
    return { key: rpcListKeys(prefix, chosen.moduleType, chosen.serverId).server, moduleType: chosen.moduleType, serverId: chosen.serverId };
  }

  /** NoServerError, or RedisUnavailableError when the registry cannot be read (then the server may well be there). */
  private noServer(target: string, fn: string): RpcError {
    if (this.ctx.health.reachable()) return new NoServerError(target);
    return this.ctx.health.unavailable(`call ${fn}: no live server of ${target} is known and the registry cannot be read`);
  }

  private expire(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.waiters.delete(id);
    if (p.sent && !p.nr) {
      this.ctx.counters.deadlines++;
      p.reject(new DeadlineError(p.fn, p.timeout));
      return;
    }
    this.ctx.counters.unsent++;
    const what = this.ctx.loaded() ? 'command' : 'registry';
    p.reject(
      this.ctx.health.unavailable(
        `${p.nr ? 'callNR' : 'call'} ${p.fn} not ${p.sent ? 'acknowledged' : 'sent'} within ${p.timeout} ms${what === 'registry' ? ' (the registry was never read)' : ''}`,
      ),
    );
  }

  private settle(id: number, err: RpcError | undefined, value?: RpcValue): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.waiters.delete(id);
    this.deadlines.delete(id, p.timeout);
    if (err) p.reject(err);
    else p.resolve(value === undefined ? null : value);
  }
}

/** An error message for a failed send; ioredis's own for a dropped connection is cryptic. */
function sendFailure(err: unknown): string {
  const message = messageOf(err);
  if (/max retries per request|Connection is closed/i.test(message))
    return 'the connection to Redis dropped before it answered (the request may or may not have been queued)';
  return message;
}
