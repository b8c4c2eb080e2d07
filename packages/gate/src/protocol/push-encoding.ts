import { encodePublishQos0, encodePublishV5, type PublishProperties } from './encode';

/** What a fan-out writes to: a connection (MqttConnection), by its protocol level. */
export interface PushTarget {
  /** Set for an MQTT 5 connection. */
  readonly v5: unknown;
  /** Writes bytes already encoded for the target's level; false when not written. */
  pushEncoded(bytes: Buffer): boolean;
}

/**
 * One push to many connections (broadcast, sendBatch, sendToUser), encoded once per distinct
 * encoding and the same Buffer handed to every receiver of that encoding, instead of one
 * copy per receiver (a 60 KB broadcast to 500 clients was once 500 copies). There are
 * two: MQTT 3.1 / 3.1.1 (levels 3 and 4 encode a QoS 0 PUBLISH alike, MQTT 3.1.1 §3.3) and
 * MQTT 5 with the push's properties (MQTT 5.0 §3.3.2.3); the gate sends no outbound Topic
 * Aliases, so every MQTT 5 receiver gets the same bytes. Each is made on first use.
 */
export class PushEncoding {
  private v4: Buffer | null | undefined;
  private v5: Buffer | null | undefined;
  /** Encodings made (at most 2): for tests and the bench. */
  encodes = 0;

  constructor(
    readonly topic: string,
    readonly payload: Buffer,
    readonly properties: PublishProperties | undefined,
  ) {}

  /** The bytes for a target's level; null when the push cannot be encoded (a topic or property over 65 535 bytes). */
  bytesFor(target: PushTarget): Buffer | null {
    if (target.v5) {
      if (this.v5 === undefined) this.v5 = this.encode(true);
      return this.v5;
    }
    if (this.v4 === undefined) this.v4 = this.encode(false);
    return this.v4;
  }

  /** Pushes to one target; false when not written (see MqttConnection.pushEncoded). */
  pushTo(target: PushTarget): boolean {
    const bytes = this.bytesFor(target);
    return bytes !== null && target.pushEncoded(bytes);
  }

  private encode(v5: boolean): Buffer | null {
    this.encodes++;
    try {
      return v5 ? encodePublishV5(this.topic, this.payload, this.properties) : encodePublishQos0(this.topic, this.payload);
    } catch {
      return null;
    }
  }
}
