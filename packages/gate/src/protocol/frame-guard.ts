/**
 * Watches the MQTT fixed headers in a byte stream and reports a packet larger than the
 * limit as soon as its Remaining Length is known, before the packet is buffered whole
 * (mqtt-packet's parser has no size limit). Only header bytes are read; payload bytes are
 * skipped by arithmetic. The Remaining Length is at most 4 bytes (MQTT-2.2.3); a 5th
 * continuation byte is malformed.
 */
export class FrameGuard {
  /** Payload bytes of the current packet still to skip. */
  private skip = 0;
  /** 0: expecting a fixed-header byte; n > 0: n-1 length bytes read so far. */
  private header = 0;
  private length = 0;
  private multiplier = 1;

  constructor(private readonly maxPacketSize: number) {}

  /**
   * Scans a chunk. Returns `null` when every packet seen so far fits, otherwise a
   * description of the violation (the caller closes the connection).
   */
  scan(chunk: Buffer): string | null {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.skip > 0) {
        const step = Math.min(this.skip, n - i);
        this.skip -= step;
        i += step;
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
        if (this.header === 4) return 'malformed Remaining Length (more than 4 bytes, MQTT-2.2.3)';
        this.header++;
        continue;
      }
      const total = 1 + this.header + this.length;
      if (total > this.maxPacketSize) return `packet of ${total} bytes exceeds maxPacketSize ${this.maxPacketSize}`;
      this.skip = this.length;
      this.header = 0;
    }
    return null;
  }
}
