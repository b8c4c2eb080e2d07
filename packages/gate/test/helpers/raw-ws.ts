import * as mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';

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
}

/**
 * A raw MQTT peer over a `ws` WebSocket: send packets or bytes in frames of your choosing,
 * see every frame the gate sends, await packets, await the close.
 */
export class RawWs {
  readonly frames: ReceivedFrame[] = [];
  readonly packets: mqttPacket.Packet[] = [];
  /** Resolves with the close code when the WebSocket has closed. */
  readonly closed: Promise<number>;
  private waiters: Array<{ match: (p: mqttPacket.Packet) => boolean; resolve: (p: mqttPacket.Packet) => void }> = [];
  private readonly stream = mqttPacket.parser({ protocolVersion: 4 });

  private constructor(readonly ws: WebSocket) {
    this.stream.on('packet', (p: mqttPacket.Packet) => {
      this.packets.push(p);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(p)) return true;
        this.packets.splice(this.packets.indexOf(p), 1);
        w.resolve(p);
        return false;
      });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const frame: ReceivedFrame = { bytes: Buffer.from(data), binary: isBinary, packets: [], leftover: 0 };
      const alone = mqttPacket.parser({ protocolVersion: 4 });
      alone.on('packet', (p: mqttPacket.Packet) => frame.packets.push(p));
      alone.on('error', (e: Error) => (frame.error = e.message));
      frame.leftover = alone.parse(frame.bytes);
      this.frames.push(frame);
      this.stream.parse(frame.bytes);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code: number) => resolve(code)));
    ws.on('error', () => undefined);
  }

  /** Opens a WebSocket to the URL; resolves once the upgrade is done. */
  static open(url: string, opts: RawWsOptions = {}): Promise<RawWs> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts.protocols ?? ['mqtt'], { headers: opts.headers, perMessageDeflate: false });
      const client = new RawWs(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected HTTP ${res.statusCode}`)));
    });
  }

  /** The subprotocol the server selected ('' for none). */
  get protocol(): string {
    return this.ws.protocol;
  }

  /** Sends one packet as one binary frame. */
  send(packet: mqttPacket.Packet, protocolVersion = 4): void {
    this.ws.send(mqttPacket.generate(packet, { protocolVersion }), { binary: true });
  }

  /** Sends bytes as one binary frame. */
  sendBytes(bytes: Buffer): void {
    this.ws.send(bytes, { binary: true });
  }

  /** Sends CONNECT (3.1.1, clean, keepalive 60 unless overridden) and awaits CONNACK. */
  async connect(fields: Partial<mqttPacket.IConnectPacket> = {}): Promise<mqttPacket.IConnackPacket> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'raw-ws', keepalive: 60, ...fields });
    return (await this.next('connack')) as mqttPacket.IConnackPacket;
  }

  /** Resolves with the first packet (already received or future) of that type matching `pred`. */
  next(cmd: mqttPacket.PacketCmd, pred: (p: mqttPacket.Packet) => boolean = () => true): Promise<mqttPacket.Packet> {
    const match = (p: mqttPacket.Packet) => p.cmd === cmd && pred(p);
    const idx = this.packets.findIndex(match);
    if (idx >= 0) return Promise.resolve(this.packets.splice(idx, 1)[0]);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Closes at once (no closing handshake). */
  destroy(): void {
    this.ws.terminate();
  }
}
