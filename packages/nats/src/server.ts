import { TransportClosedError, type RpcHandler, type RpcValue, type ServerInfo } from '@mqgate/rpc';
import { decodeRequest, encodeResponse, RequestArgsError, toWireError, type RpcRequest, type WireError } from '@mqgate/rpc/internal';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Outbox } from './outbox';
import type { RegistryEvent } from './registry';
import { PROBE_HEADER, type Subjects } from './subjects';

/** Counters of the servers of one transport. */
export interface ServerCounters {
  /** Requests run. */
  served: number;
  /** Requests dropped unrun because their deadline had passed. */
  expiredDropped: number;
  /** Handlers that threw. */
  handlerErrors: number;
  /** Requests that did not decode. */
  malformed: number;
}

/**
 * One served server: a subscription to its own subject (serverId and sticky calls) and one
 * in its type's queue group. At `maxConcurrent` (running plus held) it announces `busy` and
 * leaves the queue group, so new work of its type goes elsewhere; messages already on their
 * way are held and run in order; at half it rejoins and announces `free`. A request whose
 * deadline (its `deadline`, also sent as header Mqgate-Deadline) has passed when it would start is dropped unrun.
 */
export class NatsServer {
  running = 0;
  private readonly held: Msg[] = [];
  private ownSub: Subscription | undefined;
  private typeSub: Subscription | undefined;
  private open = true;
  private idle: (() => void)[] = [];

  constructor(
    readonly info: ServerInfo,
    private readonly handler: RpcHandler,
    private readonly nc: NatsConnection,
    /** Where replies wait for this turn's write (outbox.ts). */
    private readonly outbox: Outbox,
    private readonly subjects: Subjects,
    private readonly maxConcurrent: number,
    private readonly counters: ServerCounters,
    private readonly announce: (ev: RegistryEvent) => void,
  ) {}

  /** Subscribes (own subject, queue group) and announces `join`. */
  start(): void {
    this.ownSub = this.nc.subscribe(this.subjects.server(this.info.serverId), { callback: (_e, m) => this.onMsg(m) });
    this.joinQueue();
    this.announce({ op: 'join', info: this.info });
  }

  /** A heartbeat (also the answer to discovery). */
  entry(): RegistryEvent {
    return { op: 'hb', info: this.info, busy: this.typeSub === undefined };
  }

  /**
   * Stops taking calls: announces `leave`, unsubscribes, answers held requests with CLOSED,
   * and (when `waitRunning`) waits for running handlers.
   */
  async stop(waitRunning: boolean): Promise<void> {
    if (!this.open) return;
    this.open = false;
    this.announce({ op: 'leave', info: this.info });
    // Draining: requests already on their way are answered CLOSED (not lost to their deadline).
    const drained = Promise.all([this.ownSub?.drain(), this.typeSub?.drain()]).catch(() => undefined);
    this.typeSub = undefined;
    const closed = toWireError(new TransportClosedError(`server ${this.info.serverId}`));
    for (const m of this.held.splice(0)) this.respond(m, 0, closed);
    if (waitRunning && this.running > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    await drained;
  }

  private joinQueue(): void {
    this.typeSub = this.nc.subscribe(this.subjects.type(this.info.moduleType), {
      queue: this.info.moduleType,
      callback: (_e, m) => this.onMsg(m),
    });
  }

  private onMsg(m: Msg): void {
    // A caller's liveness probe (liveness.ts: empty, header Mqgate-Probe): the subscription
    // answering is the answer. A request is never empty (it names its fn), so only empty
    // messages have their headers parsed.
    if (m.data.length === 0 && m.headers?.has(PROBE_HEADER)) return;
    if (!this.open) {
      this.respond(m, 0, toWireError(new TransportClosedError(`server ${this.info.serverId}`)));
      return;
    }
    if (this.running >= this.maxConcurrent) this.held.push(m);
    else void this.run(m);
    if (this.typeSub && this.running + this.held.length >= this.maxConcurrent) {
      // Announce first: a caller then learns "busy" before it can see no responders for the type.
      // drain, not unsubscribe: messages NATS sent before it saw the UNSUB still reach onMsg (held).
      this.announce({ op: 'busy', info: this.info });
      this.typeSub.drain().catch(() => undefined);
      this.typeSub = undefined;
    }
  }

  private async run(m: Msg): Promise<void> {
    // The deadline is read from the request itself (the same value as its Mqgate-Deadline
    // header, which callers still send): parsing the header text cost more than the request.
    let req: RpcRequest | undefined;
    let bad: unknown;
    try {
      req = decodeRequest(m.data);
    } catch (err) {
      bad = err;
    }
    const deadline = req?.deadline ?? (bad instanceof RequestArgsError ? bad.request.deadline : 0);
    if (deadline > 0 && Date.now() >= deadline) {
      this.counters.expiredDropped++;
      return this.next();
    }
    if (!req) {
      this.counters.malformed++;
      if (bad instanceof RequestArgsError) this.respond(m, bad.request.id, toWireError(bad));
      return this.next();
    }
    this.running++;
    this.counters.served++;
    try {
      let result: RpcValue | void;
      try {
        result = await this.handler(req.fn, req.args, { fn: req.fn, deadline: req.deadline });
      } catch (err) {
        this.counters.handlerErrors++;
        this.respond(m, req.id, toWireError(err));
        return;
      }
      this.respond(m, req.id, undefined, result === undefined ? null : result);
    } finally {
      this.running--;
      this.next();
    }
  }

  /** A slot is free: run held requests, rejoin the queue group at half load, wake close(). */
  private next(): void {
    while (this.running < this.maxConcurrent && this.held.length > 0) void this.run(this.held.shift() as Msg);
    if (this.open && !this.typeSub && this.running + this.held.length <= Math.floor(this.maxConcurrent / 2)) {
      this.joinQueue();
      this.announce({ op: 'free', info: this.info });
    }
    if (this.running === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  private respond(m: Msg, id: number, error: WireError | undefined, result?: RpcValue): void {
    if (!m.reply || this.nc.isClosed()) return;
    this.outbox.publish(m.reply, encodeResponse({ id, error, result }), undefined, undefined, this.replyFailed, id);
  }

  /** A reply the client refused (over max_payload, or the connection just closed): an ENCODE error in its place. */
  private readonly replyFailed = (err: Error, subject: string, id: number): void => {
    try {
      if (!this.nc.isClosed()) this.nc.publish(subject, encodeResponse({ id, error: { code: 'ENCODE', message: `reply not sent: ${err.message}` } }));
    } catch {
      // nothing more to do: the caller fails at its deadline
    }
  };
}
