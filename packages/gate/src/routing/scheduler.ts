import type { IPublishPacket } from 'mqtt-packet';
import type { RequestSink } from '../protocol/connection';
import type { GateSession } from '../session/session';

/** Runs one request of a session to completion (the router); never rejects in practice. */
export type RunRequest = (session: GateSession, packet: IPublishPacket) => Promise<void>;

/**
 * The request queue of one connection, owned by the {@link RequestScheduler}: the
 * connection's publish sink and its capacity source. The one admission rule: at most
 * `maxInflight` requests of a connection are running or waiting; at that limit the
 * connection stops reading (TCP backpressure), where mqant answers "the work queue is
 * full!" (issue #72). With `ordered`, one request runs at a time, in arrival order.
 */
export class RequestQueue implements RequestSink {
  private running = 0;
  private waiting: IPublishPacket[] | undefined;

  constructor(
    private readonly scheduler: RequestScheduler,
    /** The connection's session: replaced when a resume re-attaches another one to the connection. */
    public session: GateSession,
  ) {}

  /** Requests running or waiting now. */
  get load(): number {
    return this.running + (this.waiting?.length ?? 0);
  }

  capacity(): number {
    return Math.max(1, this.scheduler.maxInflight - this.load);
  }

  submit(packet: IPublishPacket): void {
    this.scheduler.outstanding++;
    if (this.running < this.scheduler.concurrency) this.start(packet);
    else (this.waiting ??= []).push(packet);
    if (this.load >= this.scheduler.maxInflight) this.session.conn.pause();
  }

  /** Drops the waiting (not yet started) requests: the connection has closed. */
  discard(): void {
    const dropped = this.waiting?.length ?? 0;
    this.waiting = undefined;
    this.scheduler.finished(dropped);
  }

  private start(packet: IPublishPacket): void {
    this.running++;
    const done = (): void => this.done();
    this.scheduler.run(this.session, packet).then(done, done);
  }

  private done(): void {
    this.running--;
    this.scheduler.afterEach?.(this.session);
    const next = this.waiting?.shift();
    if (next) this.start(next);
    if (this.load < this.scheduler.maxInflight) this.session.conn.resume();
    this.scheduler.finished(1);
  }
}

/**
 * Request admission over every connection: makes each connection's {@link RequestQueue},
 * counts the requests outstanding gate-wide, and tells a stopping gate when they are done.
 */
export class RequestScheduler {
  /** Requests running or queued, over every session. */
  outstanding = 0;
  /** Requests of one connection that may run at once: 1 when ordered, else maxInflight. */
  readonly concurrency: number;
  private idleWaiters: Array<() => void> = [];

  /**
   * @param afterEach called when each request of a session has finished (before the next one
   *   starts), e.g. to send what a request left pending; no extra promise per request.
   */
  constructor(
    readonly maxInflight: number,
    ordered: boolean,
    readonly run: RunRequest,
    readonly afterEach?: (session: GateSession) => void,
  ) {
    this.concurrency = ordered ? 1 : maxInflight;
  }

  /** The request queue of a newly connected session. */
  open(session: GateSession): RequestQueue {
    return new RequestQueue(this, session);
  }

  /** @internal `n` requests left the gate (done or dropped). */
  finished(n: number): void {
    this.outstanding -= n;
    if (this.outstanding !== 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when no request is running or queued anywhere. */
  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
