/** The verified client certificate of a TLS connection (only when `requestCert` and verified). */
export interface ClientCertificate {
  /** Subject fields, e.g. `{ CN: 'device-17', O: 'acme' }` (node's PeerCertificate.subject). */
  subject: Record<string, string>;
  /** Issuer fields. */
  issuer: Record<string, string>;
  /** SHA-256 fingerprint, `AA:BB:...`. */
  fingerprint256: string;
  serialNumber: string;
}

/**
 * One client byte stream, whatever carries it. The TCP and WebSocket listeners adapt
 * their sockets to this; the MQTT connection knows nothing else about them.
 */
export interface Wire {
  /** mqant's Network value. */
  readonly network: 'tcp' | 'websocket';
  /** Client address without port: the socket's, or X-Forwarded-For from a trusted proxy. */
  readonly remoteAddress: string;
  /** HTTP User-Agent of a WebSocket client (mqant stores it in Settings["User-Agent"]). */
  readonly userAgent?: string;
  /** True on the TLS listeners (mqtts, wss). */
  readonly secure?: boolean;
  /** The client's verified certificate (TLS listeners with `requestCert`). */
  readonly certificate?: ClientCertificate;
  /**
   * When the client's TCP connection was accepted (ms), when that was before the wire was
   * made (a WebSocket upgrade, a PROXY header): the connectTimeout clock starts there.
   */
  readonly acceptedAt?: number;
  /** Writes one whole MQTT packet (one WebSocket frame per packet). */
  write(packet: Buffer): void;
  /**
   * Bytes written in earlier ticks and not yet handed to the kernel: grows only when the
   * client reads slower than it is written to (this tick's corked writes do not count).
   */
  bufferedBytes(): number;
  /** Bytes written and not yet handed to the kernel, this tick's corked writes included. */
  unsentBytes(): number;
  /**
   * Told after the writes of each tick were handed to the kernel (it then reads
   * `unsentBytes()`); set by the connection when the gate bounds its total output.
   */
  flushTo: { flushed(): void } | undefined;
  /**
   * Calls `drained` once, when everything written so far has been handed to the kernel
   * (at once, on the next tick, when nothing is waiting). Not called if the wire closes first.
   */
  whenDrained(drained: () => void): void;
  /** Stops reading (backpressure). */
  pause(): void;
  resume(): void;
  /** Flushes what is written, then closes. */
  end(): void;
  /** Closes at once. */
  destroy(): void;
}

/** What a wire reports to whoever reads it. */
export interface WireSink {
  data(chunk: Buffer): void;
  /**
   * The wire refused input larger than it may buffer (a WebSocket message over its bound)
   * and closes itself right after this call (WebSocket close 1009): the last moment to tell
   * the client why (an MQTT 5 DISCONNECT). `closed` still follows once the socket is gone.
   */
  tooLarge?(reason: string): void;
  /** Called once, when the underlying socket has closed. `error` when it failed. */
  closed(error?: Error): void;
}
