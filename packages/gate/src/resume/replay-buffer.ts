import type { BufferedPush, Mqtt5PushProperties } from '@mqgate/rpc';

/** Bytes a buffered push is charged besides its body: topic and a fixed overhead. */
const OVERHEAD = 64;

/**
 * The pushes a detached session missed (a detached session keeps the pushes it missed, bounded), in order, bounded by count and
 * bytes (`resumeBufferMessages`, `resumeBufferBytes`): past either bound the oldest are
 * dropped and counted in `lost`, so the newest are kept. A push larger than the byte bound
 * on its own is dropped (and counted) instead.
 */
export class ReplayBuffer {
  private items: BufferedPush[] = [];
  private head = 0;
  /** Bytes held: bodies plus topic and {@link OVERHEAD} each. */
  bytes = 0;
  /** Pushes dropped since the session detached. */
  lost: number;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
    lost = 0,
  ) {
    this.lost = lost;
  }

  /** Pushes held now. */
  get length(): number {
    return this.items.length - this.head;
  }

  /**
   * Appends a push (the body is kept as given: callers hand over buffers they do not reuse).
   * Always true: the push is kept for the client. `qos` 1 and `messageId` (a QoS 1 push
   * written and not acknowledged on an earlier connection) travel with it to the resume.
   */
  push(topic: string, body: Uint8Array, properties?: Mqtt5PushProperties, qos: 0 | 1 = 0, messageId?: number): boolean {
    const size = cost(topic, body);
    if (size > this.maxBytes || this.maxMessages === 0) {
      this.lost++;
      return true;
    }
    const item: BufferedPush = properties === undefined ? { topic, body } : { topic, body, properties };
    if (qos === 1) item.qos = 1;
    if (qos === 1 && messageId !== undefined) item.messageId = messageId;
    this.items.push(item);
    this.bytes += size;
    while (this.length > this.maxMessages || this.bytes > this.maxBytes) {
      const old = this.items[this.head++];
      this.bytes -= cost(old.topic, old.body);
      this.lost++;
    }
    if (this.head > 32 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return true;
  }

  /** Every push held, oldest first, and empties the buffer (`lost` stays). */
  drain(): BufferedPush[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    return out;
  }
}

function cost(topic: string, body: Uint8Array): number {
  return body.length + topic.length + OVERHEAD;
}
