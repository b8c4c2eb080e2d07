/**
 * Bytes a connection received but has not parsed yet because its reading is paused, in the
 * order they came: a queue of the chunks as the wire delivered them, O(1) to add to and to
 * take from. A paused WebSocket still hands over the frames it had already received, one
 * `message` each; joining each into one growing Buffer copied everything held so far per
 * frame, work proportional to the backlog on every frame (a client pipelining requests it
 * never reads the answers of made that seconds of CPU per tick across 200 connections).
 * Chunks are fed to the parser one at a time on resume (it keeps a packet split across two).
 */
export class HeldInput {
  private chunks: Buffer[] = [];
  private head = 0;
  /** Bytes held. */
  bytes = 0;

  get empty(): boolean {
    return this.head === this.chunks.length;
  }

  /** Adds a chunk at the end (received after everything held). */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** Puts back, at the front, the unparsed rest of the chunk just taken. */
  unshift(rest: Buffer): void {
    if (rest.length === 0) return;
    if (this.head > 0) this.chunks[--this.head] = rest;
    else this.chunks.unshift(rest);
    this.bytes += rest.length;
  }

  /** Takes the oldest chunk, or undefined when empty. */
  shift(): Buffer | undefined {
    if (this.empty) return undefined;
    const c = this.chunks[this.head];
    this.chunks[this.head++] = EMPTY;
    this.bytes -= c.length;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head > 32 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    return c;
  }
}

const EMPTY = Buffer.alloc(0);
