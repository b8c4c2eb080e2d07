import {
  DeadlineError,
  NoServerError,
  RpcError,
  ServerLostError,
  TransportClosedError,
  type Address,
  type RpcValue,
  type ServerInfo,
} from '@mqgate/rpc';
import { DeadlineSweep, decodeResponse, describeAddress, encodeRequest, fromWireError, pickSticky } from '@mqgate/rpc/internal';
import { headers, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import type { Outbox } from './outbox';
import type { NatsRegistry } from './registry';
import { DEADLINE_HEADER, type Subjects } from './subjects';

/** Counters of one transport's calls. */
export interface CallerCounters {
  calls: number;
  callsNR: number;
  replies: number;
  deadlines: number;
  /** Replies that came after their call had settled (deadline). */
  lateReplies: number;
  /** No-responders answers (NATS 503). */
  noResponders: number;
}

interface Pending {
  fn: string;
  to: Address;
  bytes: Buffer;
  deadline: number;
  timeout: number;
  resolve(v: RpcValue): void;
  reject(e: RpcError): void;
  /** Waiting for a busy server of the type to free up (every server of the type is busy). */
  waitingFree: boolean;
  /** epoch ms of the last send; 0 while it is in flight nowhere (not sent yet, or NATS answered no responders). */
  sentAt: number;
  /** The server it was last sent to (serverId or sticky key); undefined for a call to the type's queue group. */
  target: string | undefined;
}

export interface CallerContext {
  nc: () => NatsConnection | undefined;
  /** Where requests wait for this turn's write (outbox.ts). */
  outbox: Outbox;
  subjects: Subjects;
  registry: NatsRegistry;
  replyPrefix: string;
  callerId: string;
  counters: CallerCounters;
  /** The error for a call that cannot be sent now (NATS unreachable), or undefined when it can. */
  unavailable: () => RpcError | undefined;
}

/** ms between re-sends of a call that is waiting for a busy type (besides the `free` events). */
const BUSY_RETRY_MS = 50;

/**
 * Pending calls of one transport: each is published with reply subject
 * `<replyPrefix>.<n>` (one wildcard subscription per transport reads them all), settled by
 * the reply, by NATS's no-responders status (503: NoServerError at once, or a wait while the
 * type's servers are all busy), by its deadline, by a disconnect (NatsUnavailableError) or
 * by close().
 */
export class Caller {
  private readonly pending = new Map<number, Pending>();
  /** Every pending call's deadline, on one timer. */
  private readonly deadlines = new DeadlineSweep<number>((id) => this.expire(id));
  private nextId = 0;
  private lastDeadline = 0;
  private lastHeaders: MsgHdrs | undefined;

  constructor(private readonly ctx: CallerContext) {}

  get size(): number {
    return this.pending.size;
  }

  /** Subject for `to` now: a server's own subject (serverId, sticky key) or the type's queue subject. @throws NoServerError */
  route(to: Address): string {
    const { registry, subjects } = this.ctx;
    if (to.serverId !== undefined) {
      if (!registry.has(to.serverId)) throw new NoServerError(to.serverId);
      return subjects.server(to.serverId);
    }
    if (to.moduleType === undefined || !registry.hasType(to.moduleType)) throw new NoServerError(describeAddress(to));
    if (to.key !== undefined) return subjects.server(pickSticky(to.key, registry.list(to.moduleType)).serverId);
    return subjects.type(to.moduleType);
  }

  call(to: Address, fn: string, args: RpcValue[], timeout: number): Promise<RpcValue> {
    this.ctx.counters.calls++;
    const down = this.ctx.unavailable();
    if (down) return Promise.reject(down);
    const id = (this.nextId = (this.nextId % 0xffffffff) + 1);
    const deadline = Date.now() + timeout;
    let bytes: Buffer;
    try {
      bytes = encodeRequest({ id, fn, args, replyTo: '', deadline, caller: this.ctx.callerId });
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<RpcValue>((resolve, reject) => {
      const p: Pending = { fn, to, bytes, deadline, timeout, resolve, reject, waitingFree: false, sentAt: 0, target: undefined };
      this.pending.set(id, p);
      this.deadlines.add(id, timeout);
      this.send(id, p);
    });
  }

  /** Call `id` reached its deadline: DeadlineError. */
  private expire(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.ctx.counters.deadlines++;
    p.reject(new DeadlineError(p.fn, p.timeout));
  }

  callNR(to: Address, fn: string, args: RpcValue[], timeout: number): void {
    this.ctx.counters.callsNR++;
    const down = this.ctx.unavailable();
    if (down) throw down;
    const subject = this.route(to);
    const deadline = Date.now() + timeout;
    const h = this.deadlineHeaders(deadline);
    const bytes = encodeRequest({ id: 0, fn, args, replyTo: '', deadline, caller: this.ctx.callerId });
    // Sent at once (its errors reject callNR itself), after the calls queued before it.
    this.ctx.outbox.flush();
    const nc = this.ctx.nc();
    if (!nc) throw this.ctx.unavailable() ?? new TransportClosedError();
    try {
      nc.publish(subject, bytes, { headers: h });
    } catch (err) {
      throw this.publishError(bytes.length, err);
    }
  }

  /** A message on this transport's reply subscription. */
  onReply(m: Msg): void {
    const id = Number(m.subject.slice(this.ctx.replyPrefix.length + 1));
    const p = this.pending.get(id);
    if (!p) {
      this.ctx.counters.lateReplies++;
      return;
    }
    if (m.headers?.code === 503) return this.onNoResponders(id, p);
    let res;
    try {
      res = decodeResponse(m.data);
    } catch (err) {
      return this.settle(id, new RpcError(`malformed reply to ${p.fn}: ${(err as Error).message}`, 'DECODE'));
    }
    this.ctx.counters.replies++;
    if (res.error) this.settle(id, fromWireError(res.error));
    else this.settle(id, undefined, res.result ?? null);
  }

  /** A busy server of `moduleType` is free again: re-send the calls waiting for it. */
  freed(moduleType: string): void {
    for (const [id, p] of this.pending) if (p.waitingFree && p.to.moduleType === moduleType) this.send(id, p);
  }

  /** Rejects every pending call with `err` (disconnect, close). */
  failAll(err: RpcError): void {
    for (const id of [...this.pending.keys()]) this.settle(id, err);
  }

  closeAll(): void {
    this.failAll(new TransportClosedError());
  }

  /**
   * Settles the calls in flight to a server found dead (`why` says how, NatsRegistry.lose)
   * with ServerLostError (code NO_SERVER): those sent to it by serverId or sticky key, and those
   * to its module type when no listed server of the type is left (while one is, a call to the
   * type may be running there, so those wait for their deadline).
   */
  lost(info: ServerInfo, why: string): void {
    const typeGone = !this.ctx.registry.hasType(info.moduleType);
    for (const [id, p] of [...this.pending]) {
      if (p.sentAt === 0) continue;
      if (p.target === undefined ? !(typeGone && p.to.moduleType === info.moduleType) : p.target !== info.serverId) continue;
      const what = `${info.serverId} (type ${info.moduleType})`;
      this.settle(id, new ServerLostError(`module unavailable: server ${what} ${why} while call ${p.fn} was in flight; it may or may not have run`));
    }
  }

  /** The servers that may hold a call sent at or before `sentBefore` (epoch ms): its target, or every listed server of its type. */
  *inFlightTargets(sentBefore: number): Iterable<string> {
    const types = new Set<string>();
    for (const p of this.pending.values()) {
      if (p.sentAt === 0 || p.sentAt > sentBefore) continue;
      if (p.target !== undefined) yield p.target;
      else if (p.to.moduleType !== undefined && !types.has(p.to.moduleType)) {
        types.add(p.to.moduleType);
        for (const s of this.ctx.registry.list(p.to.moduleType)) yield s.serverId;
      }
    }
  }

  private onNoResponders(id: number, p: Pending): void {
    this.ctx.counters.noResponders++;
    p.sentAt = 0; // delivered nowhere: nothing of it runs on any server
    const { registry } = this.ctx;
    const target = p.to.serverId ?? (p.to.key !== undefined ? undefined : p.to.moduleType);
    if (p.to.serverId === undefined && p.to.key === undefined && p.to.moduleType && registry.anyBusy(p.to.moduleType)) {
      // Every server of the type has left the queue group for now: wait in line, as on Redis.
      p.waitingFree = true;
      // Unless a `free` event has re-sent it meanwhile (send() clears waitingFree): never twice.
      setTimeout(() => this.pending.get(id) === p && p.waitingFree && this.send(id, p), BUSY_RETRY_MS).unref();
      return;
    }
    if (p.to.serverId !== undefined || p.to.key !== undefined) {
      // Its own subject has no subscriber: the server is gone (crashed), whatever the registry says.
      const gone = p.target ?? p.to.serverId ?? this.stickyTarget(p.to);
      if (gone) registry.lose(gone, 'is gone (NATS has no subscriber for its subject)');
      if (p.to.key !== undefined && p.to.moduleType && registry.hasType(p.to.moduleType)) return this.send(id, p);
    }
    this.settle(id, new NoServerError(target ?? describeAddress(p.to)));
  }

  private stickyTarget(to: Address): string | undefined {
    const list = to.moduleType ? this.ctx.registry.list(to.moduleType) : [];
    return list.length ? pickSticky(to.key as string, list).serverId : undefined;
  }

  private send(id: number, p: Pending): void {
    p.waitingFree = false;
    if (Date.now() > p.deadline) return;
    const down = this.ctx.unavailable();
    if (down) return this.settle(id, down);
    let subject: string;
    try {
      subject = this.route(p.to);
    } catch (err) {
      return this.settle(id, err as RpcError);
    }
    const h = this.deadlineHeaders(p.deadline);
    p.target = p.to.serverId ?? (p.to.key !== undefined ? this.stickyTarget(p.to) : undefined);
    p.sentAt = Date.now();
    this.ctx.outbox.publish(subject, p.bytes, `${this.ctx.replyPrefix}.${id}`, h, this.sendFailed, id);
  }

  /**
   * The {@link DEADLINE_HEADER} of `deadline`, one object shared by the requests with that
   * deadline (the calls of one ms with one timeout): the client only reads it.
   */
  private deadlineHeaders(deadline: number): MsgHdrs {
    if (deadline === this.lastDeadline && this.lastHeaders) return this.lastHeaders;
    const h = headers();
    h.set(DEADLINE_HEADER, String(deadline));
    this.lastDeadline = deadline;
    this.lastHeaders = h;
    return h;
  }

  /** The outbox could not hand request `id` to the client: settles it (if still pending) with {@link publishError}. */
  private readonly sendFailed = (err: Error, _subject: string, id: number): void => {
    const p = this.pending.get(id);
    if (p) this.settle(id, this.publishError(p.bytes.length, err));
  };

  /** RpcError ENCODE for a request over the server's max_payload, else UNAVAILABLE (or CLOSED after close()). */
  private publishError(length: number, err: unknown): RpcError {
    const message = (err as Error).message;
    if (/payload/i.test(message)) return new RpcError(`request of ${length} bytes exceeds the NATS server's max_payload (${message})`, 'ENCODE');
    return this.ctx.unavailable() ?? new RpcError(`NATS publish failed: ${message}`, 'UNAVAILABLE');
  }

  private settle(id: number, err: RpcError | undefined, result?: RpcValue): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.deadlines.delete(id, p.timeout);
    if (err) p.reject(err);
    else p.resolve(result as RpcValue);
  }
}
