import * as mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import { RawPeer } from './raw-peer';

/** One WebSocket message received from the gate, and what it parses to on its own. */
export interface ReceivedFrame {
  bytes: Buffer;
  binary: boolean;
  /** Packets this frame holds when parsed alone (a fresh parser per frame). */
  packets: mqttPacket.Packet[];
  /** Bytes left unparsed at the end of the frame (0 when it holds whole packets only). */
  leftover: number;
  /** A parser error for this frame alone, if any. */
  error?: string;
}

export interface RawWsOptions {
  /** Subprotocols offered; default ['mqtt']. */
  protocols?: string[];
  /** Extra HTTP headers on the upgrade request (e.g. X-Forwarded-For). */
  headers?: Record<string, string>;
  /** How received packets are parsed: 4 (default) or 5 for an MQTT 5 peer. */
  protocolVersion?: 4 | 5;
}

/**
 * A raw MQTT peer over a `ws` WebSocket: send packets or bytes in frames of your choosing,
 * see every frame the gate sends, await packets, await the close.
 */
export class RawWs extends RawPeer {
  readonly frames: ReceivedFrame[] = [];
  /** Resolves with the close code when the WebSocket has closed. */
  readonly closed: Promise<number>;

  private constructor(
    readonly ws: WebSocket,
    protocolVersion: 4 | 5 = 4,
  ) {
    super('raw-ws', protocolVersion);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const frame: ReceivedFrame = { bytes: Buffer.from(data), binary: isBinary, packets: [], leftover: 0 };
      const alone = mqttPacket.parser({ protocolVersion });
      alone.on('packet', (p: mqttPacket.Packet) => frame.packets.push(p));
      alone.on('error', (e: Error) => (frame.error = e.message));
      frame.leftover = alone.parse(frame.bytes);
      this.frames.push(frame);
      this.parser.parse(frame.bytes);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code: number) => resolve(code)));
    ws.on('error', () => undefined);
  }

  /** Opens a WebSocket to the URL; resolves once the upgrade is done. */
  static open(url: string, opts: RawWsOptions = {}): Promise<RawWs> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts.protocols ?? ['mqtt'], { headers: opts.headers, perMessageDeflate: false });
      const client = new RawWs(ws, opts.protocolVersion);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected HTTP ${res.statusCode}`)));
    });
  }

  /** The subprotocol the server selected ('' for none). */
  get protocol(): string {
    return this.ws.protocol;
  }

  /** Sends bytes as one binary frame. */
  sendBytes(bytes: Buffer): void {
    this.ws.send(bytes, { binary: true });
  }

  /** Sends the parts as the fragments of one binary message (RFC 6455 §5.4: a first frame, continuations, FIN on the last). */
  sendFragments(parts: Buffer[]): void {
    parts.forEach((part, i) => this.ws.send(part, { binary: true, fin: i === parts.length - 1 }));
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Closes at once (no closing handshake). */
  destroy(): void {
    this.ws.terminate();
  }
}
