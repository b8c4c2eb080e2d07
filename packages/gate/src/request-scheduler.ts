import type { IPublishPacket } from 'mqtt-packet';
import type { GateSession } from './session';

/**
 * Per-connection request admission. At most `maxInflight` requests of a session are running
 * or waiting; at that limit the gate stops reading the socket (TCP backpressure), where
 * mqant answers "the work queue is full!" (issue #72). With `ordered`, one request runs at a
 * time, in arrival order.
 */
export class RequestScheduler {
  /** Requests running or queued, over every session. */
  outstanding = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly maxInflight: number,
    private readonly ordered: boolean,
    private readonly run: (session: GateSession, packet: IPublishPacket) => Promise<void>,
  ) {}

  submit(session: GateSession, packet: IPublishPacket): void {
    this.outstanding++;
    const limit = this.ordered ? 1 : this.maxInflight;
    if (session.running < limit) this.start(session, packet);
    else (session.queue ??= []).push(packet);
    if (session.running + (session.queue?.length ?? 0) >= this.maxInflight) session.conn.pause();
  }

  private start(session: GateSession, packet: IPublishPacket): void {
    session.running++;
    this.run(session, packet).then(
      () => this.finished(session),
      () => this.finished(session),
    );
  }

  private finished(session: GateSession): void {
    session.running--;
    this.outstanding--;
    const next = session.queue?.shift();
    if (next) this.start(session, next);
    if (session.running + (session.queue?.length ?? 0) < this.maxInflight) session.conn.resume();
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.outstanding !== 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Drops the queued (not yet started) requests of a closed session. */
  discard(session: GateSession): void {
    const dropped = session.queue?.length ?? 0;
    session.queue = undefined;
    this.outstanding -= dropped;
    this.notifyIdle();
  }

  /** Resolves when no request is running or queued anywhere. */
  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
