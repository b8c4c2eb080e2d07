/** A writable that can be corked: a net.Socket, or the socket under a WebSocket. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

/** The per-wire state of {@link corkForTick}, kept as fields of the wire itself (no extra object per connection). */
export interface TickCorked {
  /** True between the first write of a tick and the uncork on the next. */
  corked: boolean;
  /** Bytes written in the current tick (they are corked, not backlog). */
  tickBytes: number;
  readonly corkTarget: Corkable;
  /** Told after each tick's uncork (the gate's output budget); undefined: nobody. */
  flushTo: FlushListener | undefined;
}

/** Who hears that a tick's writes were handed to the kernel (see {@link Wire.flushTo}). */
export interface FlushListener {
  flushed(): void;
}

/**
 * Packets written in one tick leave in one syscall: the target is corked at the first write
 * of a tick and uncorked once the tick's microtasks have all run (the acks written while a
 * read is parsed and the in-process replies its requests resolve to, a few promise hops
 * later, go together in one writev). Call before each write with the bytes it adds to the
 * socket's buffer.
 *
 * How the uncork waits: a microtask queues it with process.nextTick, and Node runs the
 * nextTick queue only once the microtask queue is empty; a plain nextTick queued from the
 * read's own callback would run before that read's promises (a second syscall per read).
 */
export function corkForTick(wire: TickCorked, bytes: number): void {
  if (!wire.corked) {
    wire.corked = true;
    wire.corkTarget.cork();
    if (corkedWires.push(wire) === 1) queueMicrotask(afterMicrotasks);
  }
  wire.tickBytes += bytes;
}

/** The wires corked in this tick, in the order of their first write; one microtask and one nextTick per tick for all of them. */
let corkedWires: TickCorked[] = [];

function afterMicrotasks(): void {
  process.nextTick(uncorkAll);
}

function uncorkAll(): void {
  const wires = corkedWires;
  corkedWires = []; // a write from a flush listener corks again, for the next round
  for (let i = 0; i < wires.length; i++) uncork(wires[i]);
}

function uncork(wire: TickCorked): void {
  wire.corked = false;
  wire.tickBytes = 0;
  wire.corkTarget.uncork();
  if (wire.flushTo !== undefined) wire.flushTo.flushed();
}

/**
 * Calls `drained` once the socket's write buffer is empty: on its next `drain` event (which a
 * socket emits after a write that filled it past its highWaterMark), or on the next tick when
 * nothing is buffered. A socket that closes first never calls it.
 */
export function whenSocketDrained(socket: { writableLength: number; once(event: 'drain', cb: () => void): unknown }, drained: () => void): void {
  if (socket.writableLength === 0) process.nextTick(drained);
  else socket.once('drain', drained);
}
