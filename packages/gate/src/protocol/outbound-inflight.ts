import type { BufferedPush, Mqtt5PushProperties } from '@mqgate/rpc';

/** Bytes a held QoS 1 push is charged besides its body: topic and a fixed overhead (as the replay buffer). */
const OVERHEAD = 64;

/**
 * One QoS 1 push held by the gate: in flight (written, waiting for its PUBACK) or queued
 * behind the window. `messageId` 0 = not given an identifier yet; `dup` = a re-delivery
 * (MQTT-3.3.1-1: DUP 1), set for pushes carried over from an earlier connection.
 */
export interface OutboundPush {
  readonly topic: string;
  readonly body: Buffer;
  readonly properties: Mqtt5PushProperties | undefined;
  messageId: number;
  dup: boolean;
}

/** Bounds of a connection's outbound QoS 1 state. */
export interface OutboundBounds {
  /** Pushes unacknowledged at once: min(gate maxOutboundInflight, the MQTT 5 client's Receive Maximum; MQTT-3.3.4-9). */
  readonly window: number;
  /** Pushes waiting behind the window (gate maxOutboundQueue); one more is refused. */
  readonly maxQueue: number;
  /** Bytes held, in flight and queued (body + topic + 64 each), at most (gate maxBufferedBytes). */
  readonly maxBytes: number;
}

/**
 * The outbound QoS 1 pushes of one connection (QoS 1 pushes are delivered at least once): at most `window` in
 * flight, each under a packet identifier of the gate's own (server → client identifiers
 * are a space apart from the client's, MQTT 2.2.1), freed by the client's PUBACK
 * (MQTT-4.3.2); the others queue in order, bounded, and leave as PUBACKs come in. Made
 * on a connection's first QoS 1 push, so QoS 0 costs nothing. What is left unacknowledged
 * when the connection drops is taken by a resume ({@link takeAll}) and resent with DUP 1
 * under the same identifiers (MQTT-4.4.0-1).
 */
export class OutboundInflight {
  /** In flight, by packet identifier, in the order written (Map keeps insertion order). */
  private readonly inflight = new Map<number, OutboundPush>();
  private queue: OutboundPush[] = [];
  private head = 0;
  private nextId = 1;
  /** Bytes held (in flight and queued). */
  bytes = 0;
  /** Why the last {@link admit} refused, for the caller's error. */
  refusal = '';

  constructor(readonly bounds: OutboundBounds) {}

  /** Pushes in flight now. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Pushes queued behind the window now. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /**
   * Takes a push: returns it with a packet identifier (unless it already had one) when the
   * window has room and nothing is queued before it (the caller writes it now), `'queued'`
   * when it waits behind the window, or `'refused'` past maxOutboundQueue or maxBytes
   * (reason in {@link refusal}; nothing held).
   */
  admit(push: OutboundPush): OutboundPush | 'queued' | 'refused' {
    const size = cost(push);
    if (this.bytes + size > this.bounds.maxBytes) {
      this.refusal = `QoS 1 pushes held for the client would exceed maxBufferedBytes ${this.bounds.maxBytes}`;
      return 'refused';
    }
    if (this.queued === 0 && this.inflight.size < this.bounds.window) {
      this.bytes += size;
      return this.fly(push);
    }
    if (this.queued >= this.bounds.maxQueue) {
      this.refusal = `${this.queued} QoS 1 pushes already wait behind the inflight window (maxOutboundQueue ${this.bounds.maxQueue})`;
      return 'refused';
    }
    this.bytes += size;
    this.queue.push(push);
    return 'queued';
  }

  /** A PUBACK: frees the identifier; false for one not in flight (ignored: MQTT 5.0 §4.4 has no error for it). */
  ack(messageId: number): boolean {
    const p = this.inflight.get(messageId);
    if (!p) return false;
    this.inflight.delete(messageId);
    this.bytes -= cost(p);
    return true;
  }

  /** The next queued push, given an identifier and in flight, when the window has room; else undefined. */
  next(): OutboundPush | undefined {
    if (this.queued === 0 || this.inflight.size >= this.bounds.window) return undefined;
    const p = this.queue[this.head];
    this.queue[this.head++] = undefined as unknown as OutboundPush;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 32 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return this.fly(p);
  }

  /**
   * Everything held, for a resume: in flight first (with their identifiers, in the order
   * written), then the queued ones (qos 1, no identifier unless they had one); empties this.
   */
  takeAll(): BufferedPush[] {
    const out: BufferedPush[] = [];
    for (const p of this.inflight.values()) out.push(toBuffered(p));
    for (let i = this.head; i < this.queue.length; i++) out.push(toBuffered(this.queue[i]));
    this.inflight.clear();
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
    return out;
  }

  /** Puts `p` in flight, keeping its identifier when it has a free one, else the next free one from 1..65535. */
  private fly(p: OutboundPush): OutboundPush {
    if (p.messageId === 0 || this.inflight.has(p.messageId)) {
      // At most 65 535 in flight (window ≤ 65 535), so a free identifier exists.
      while (this.inflight.has(this.nextId)) this.nextId = this.nextId === 0xffff ? 1 : this.nextId + 1;
      p.messageId = this.nextId;
      this.nextId = this.nextId === 0xffff ? 1 : this.nextId + 1;
    }
    this.inflight.set(p.messageId, p);
    return p;
  }
}

function cost(p: OutboundPush): number {
  return p.body.length + p.topic.length + OVERHEAD;
}

function toBuffered(p: OutboundPush): BufferedPush {
  const b: BufferedPush = { topic: p.topic, body: p.body, qos: 1 };
  if (p.properties !== undefined) b.properties = p.properties;
  if (p.messageId !== 0) b.messageId = p.messageId;
  return b;
}
