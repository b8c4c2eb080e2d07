import type { BufferedPush, Mqtt5PushProperties } from '@mqgate/rpc';
import type { DetachedBytes } from './detached-bytes';

/** Bytes a buffered push is charged besides its body: topic and a fixed overhead. */
const OVERHEAD = 64;

/**
 * The pushes a detached session missed (a detached session keeps the pushes it missed, bounded), in order, bounded by count and
 * bytes (`resumeBufferMessages`, `resumeBufferBytes`): past either bound the oldest are
 * dropped and counted in `lost`, so the newest are kept. A push larger than the byte bound
 * on its own is dropped (and counted) instead. In front of them, the QoS 1 pushes the
 * session's last connection had not had acknowledged ({@link carry}), outside those bounds.
 * Every byte held is charged to the gate's {@link DetachedBytes} pool (maxDetachedBytesTotal),
 * which may evict the oldest ({@link evictOldest}, counted in `lost` too).
 */
export class ReplayBuffer {
  private items: BufferedPush[] = [];
  private head = 0;
  /** QoS 1 pushes carried from the closed connection, oldest first, before `items`. */
  private carried: BufferedPush[] = [];
  private carriedHead = 0;
  /** Bytes of `items` held: bodies plus topic and {@link OVERHEAD} each. */
  bytes = 0;
  /** Bytes of the carried pushes held. */
  private carriedBytes = 0;
  /** Pushes dropped since the session detached. */
  lost: number;

  /**
   * @param pool where the bytes held are charged; released by {@link release} (the session left the store).
   */
  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
    lost = 0,
    private pool?: DetachedBytes,
  ) {
    this.lost = lost;
  }

  /** Pushes held now (carried included). */
  get length(): number {
    return this.items.length - this.head + this.carried.length - this.carriedHead;
  }

  /** Bytes held now, carried pushes included. */
  get held(): number {
    return this.bytes + this.carriedBytes;
  }

  /**
   * Keeps the QoS 1 pushes the closed connection had written or queued and not had
   * acknowledged (in flight first, with their packet identifiers), ahead of the buffered
   * ones and outside resumeBufferMessages / resumeBufferBytes (they were bounded by
   * maxBufferedBytes on the connection); charged to the pool like the rest.
   */
  carry(pushes: BufferedPush[]): void {
    if (pushes.length === 0) return;
    let size = 0;
    for (const p of pushes) size += cost(p.topic, p.body);
    this.carried.push(...pushes);
    this.carriedBytes += size;
    this.pool?.charge(size);
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
    const before = this.bytes;
    this.bytes += size;
    while (this.items.length - this.head > this.maxMessages || this.bytes > this.maxBytes) this.dropItem();
    this.compact();
    this.pool?.charge(this.bytes - before);
    return true;
  }

  /** Drops the oldest pushes (carried first, counted in `lost`) until `bytes` are freed or none is left; returns how many. */
  evictOldest(bytes: number): number {
    const before = this.held;
    let n = 0;
    while (before - this.held < bytes && this.carriedHead < this.carried.length) {
      const old = this.carried[this.carriedHead];
      this.carried[this.carriedHead++] = undefined as unknown as BufferedPush;
      this.carriedBytes -= cost(old.topic, old.body);
      this.lost++;
      n++;
    }
    if (this.carriedHead === this.carried.length) {
      this.carried = [];
      this.carriedHead = 0;
    }
    while (before - this.held < bytes && this.head < this.items.length) {
      this.dropItem();
      n++;
    }
    this.compact();
    this.pool?.charge(this.held - before);
    return n;
  }

  /** Every push held, carried ones first, oldest first, and empties the buffer (`lost` stays). */
  drain(): BufferedPush[] {
    const out = [...this.carried.slice(this.carriedHead), ...this.items.slice(this.head)];
    this.pool?.charge(-this.held);
    this.items = [];
    this.head = 0;
    this.carried = [];
    this.carriedHead = 0;
    this.bytes = 0;
    this.carriedBytes = 0;
    return out;
  }

  /** The session left the detached store: what it holds is no longer the pool's (taken by a resume, or freed). */
  release(): void {
    this.pool?.charge(-this.held);
    this.pool = undefined;
  }

  private dropItem(): void {
    const old = this.items[this.head];
    this.items[this.head++] = undefined as unknown as BufferedPush;
    this.bytes -= cost(old.topic, old.body);
    this.lost++;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 32 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

function cost(topic: string, body: Uint8Array): number {
  return body.length + topic.length + OVERHEAD;
}
