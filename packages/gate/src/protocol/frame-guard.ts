/**
 * Watches the MQTT fixed headers in a byte stream: finds where each packet ends, and
 * reports a packet larger than the limit as soon as its Remaining Length is known, before
 * the packet is buffered whole (mqtt-packet's parser has no size limit). Only header bytes
 * are read; payload bytes are skipped by arithmetic. The Remaining Length is at most 4
 * bytes (MQTT-2.2.3); a 5th continuation byte is malformed.
 */
export class FrameGuard {
  /** Payload bytes of the current packet still to skip. */
  private skip = 0;
  /** 0: expecting a fixed-header byte; n > 0: n-1 length bytes read so far. */
  private header = 0;
  private length = 0;
  private multiplier = 1;
  /** Set when the stream broke a rule; the caller closes the connection. */
  violation: string | undefined;

  constructor(private readonly maxPacketSize: number) {}

  /** True between packets: the next byte scanned is a packet's first. */
  get atBoundary(): boolean {
    return this.header === 0 && this.skip === 0;
  }

  /**
   * Scans `chunk` from `from` to the end of the packet under way. Returns the index just
   * past that packet's last byte, or `chunk.length` when it continues in a later chunk;
   * -1 when the stream broke a rule (see {@link violation}).
   */
  next(chunk: Buffer, from: number): number {
    let i = from;
    const n = chunk.length;
    while (i < n) {
      if (this.skip > 0) {
        const step = Math.min(this.skip, n - i);
        this.skip -= step;
        i += step;
        if (this.skip === 0) return i;
        continue;
      }
      if (this.header === 0) {
        i++; // packet type and flags
        this.header = 1;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      const byte = chunk[i++];
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (byte & 0x80) {
        if (this.header === 4) {
          this.violation = 'malformed Remaining Length (more than 4 bytes, MQTT-2.2.3)';
          return -1;
        }
        this.header++;
        continue;
      }
      const total = 1 + this.header + this.length;
      if (total > this.maxPacketSize) {
        this.violation = `packet of ${total} bytes exceeds maxPacketSize ${this.maxPacketSize}`;
        return -1;
      }
      this.header = 0;
      this.skip = this.length;
      if (this.skip === 0) return i;
    }
    return n;
  }
}
