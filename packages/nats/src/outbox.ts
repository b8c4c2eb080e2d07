import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';

/** Called when a queued message could not be handed to the client: its error (max_payload, closed), the message's subject and tag. */
export type PublishFailed = (err: Error, subject: string, tag: number) => void;

interface Queued {
  subject: string;
  data: Uint8Array;
  reply: string | undefined;
  headers: MsgHdrs | undefined;
  failed: PublishFailed | undefined;
  tag: number;
}

/**
 * The requests and replies of one event-loop turn, handed to the NATS client together in
 * `setImmediate` (after every I/O callback of the turn has run), so they leave in one socket
 * write. The client itself coalesces only until its next microtask, and Node drains the
 * microtasks after each I/O callback: without this, every MQTT read (or every reply of a
 * handler) of a busy gate or module cost a write of its own. Each message is still one
 * ordinary PUB/HPUB (one request or one reply): only the socket write is shared.
 *
 * Messages keep their order. {@link flush} hands over what is queued at once (before the
 * client's `flush()`/`close()`, whose PING would otherwise overtake them).
 */
export class Outbox {
  private queue: Queued[] = [];
  private scheduled = false;
  private readonly drain = () => this.flush();

  /** @param nc the connection now, or undefined (closed): what is queued then is failed. */
  constructor(private readonly nc: () => NatsConnection | undefined) {}

  /** Messages waiting for this turn's flush. */
  get size(): number {
    return this.queue.length;
  }

  /**
   * Queues one message for this turn's write; `failed` hears the client's error if it refuses
   * it (over max_payload, connection closed), with `tag` (e.g. the call id: one shared
   * handler, no closure per message).
   */
  publish(subject: string, data: Uint8Array, reply: string | undefined, headers: MsgHdrs | undefined, failed?: PublishFailed, tag = 0): void {
    this.queue.push({ subject, data, reply, headers, failed, tag });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  /** Hands every queued message to the client now, in order. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const queue = this.queue;
    this.queue = [];
    const nc = this.nc();
    for (const q of queue) {
      try {
        if (!nc || nc.isClosed()) throw new Error('the NATS connection is closed');
        nc.publish(q.subject, q.data, { reply: q.reply, headers: q.headers });
      } catch (err) {
        q.failed?.(err instanceof Error ? err : new Error(String(err)), q.subject, q.tag);
      }
    }
  }
}
