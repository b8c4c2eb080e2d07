/**
 * MQTT 5 test peers: a raw mqtt-packet v5 client over TCP or WebSocket (for the protocol
 * errors MQTT.js will not send), and MQTT.js options for protocol level 5.
 */
import { connect as netConnect, type Socket } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import type * as mqtt from 'mqtt';
import { RawPeer } from './helpers/raw-peer';

export const V5 = { protocolVersion: 5 } as const;

/** MQTT.js options for MQTT 5. */
export const mqtt5 = (opts: mqtt.IClientOptions = {}): mqtt.IClientOptions => ({ protocolVersion: 5, ...opts });

/** A raw MQTT 5 peer over TCP or WebSocket: packets parsed at level 5 and kept until awaited (RawPeer). */
export class RawV5 extends RawPeer {
  readonly closed: Promise<void>;

  private constructor(
    private readonly out: (b: Buffer) => void,
    private readonly kill: () => void,
    onData: (feed: (b: Buffer) => void) => void,
    onClose: (done: () => void) => void,
    /** The WebSocket subprotocol the gate chose, for WebSocket peers. */
    readonly subprotocol?: string,
    /** The socket of a TCP peer (to pause reading). */
    readonly socket?: Socket,
  ) {
    super('', 5);
    onData((b) => this.parser.parse(b));
    this.closed = new Promise((resolve) => onClose(resolve));
  }

  static tcp(port: number): Promise<RawV5> {
    return new Promise((resolve, reject) => {
      const s: Socket = netConnect(port, '127.0.0.1', () =>
        resolve(
          new RawV5(
            (b) => s.write(b),
            () => s.destroy(),
            (feed) => s.on('data', feed),
            (done) => s.on('close', () => done()),
            undefined,
            s,
          ),
        ),
      );
      s.once('error', reject);
      s.on('error', () => undefined);
    });
  }

  static ws(url: string, subprotocol = 'mqtt'): Promise<RawV5> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, subprotocol);
      ws.once('open', () =>
        resolve(
          new RawV5(
            (b) => ws.send(b),
            () => ws.terminate(),
            (feed) => ws.on('message', (d: Buffer) => feed(d)),
            (done) => ws.on('close', () => done()),
            ws.protocol,
          ),
        ),
      );
      ws.once('error', reject);
      ws.on('error', () => undefined);
    });
  }

  /** Sends one packet, MQTT 5 encoded. */
  override send(packet: mqttPacket.Packet, protocolVersion = 5): void {
    super.send(packet, protocolVersion);
  }

  sendBytes(bytes: Buffer): void {
    this.out(bytes);
  }

  destroy(): void {
    this.kill();
  }

  /** Sends an MQTT 5 CONNECT (clean, keepalive 60 unless overridden) and awaits the CONNACK. */
  override async connect(fields: Partial<mqttPacket.IConnectPacket> = {}): Promise<mqttPacket.IConnackPacket> {
    return super.connect({ protocolVersion: 5, ...fields });
  }

  /** The DISCONNECT the gate sends before it closes, and the close itself. */
  async disconnected(): Promise<mqttPacket.IDisconnectPacket> {
    const d = (await this.next('disconnect')) as mqttPacket.IDisconnectPacket;
    await this.closed;
    return d;
  }

  /** Publishes at QoS 0 and resolves with the next PUBLISH received on `replyTopic`. */
  async ask(
    topic: string,
    payload: string | Buffer,
    properties: mqttPacket.IPublishPacket['properties'],
    replyTopic: string,
  ): Promise<mqttPacket.IPublishPacket> {
    const reply = this.next('publish', (p) => (p as mqttPacket.IPublishPacket).topic === replyTopic);
    this.send({ cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false, properties });
    return (await reply) as mqttPacket.IPublishPacket;
  }
}

/** Raw v5 peers opened by a test file, destroyed by `closeAll` (afterEach). */
export class RawV5Peers {
  private readonly open: RawV5[] = [];

  async tcp(port: number): Promise<RawV5> {
    const r = await RawV5.tcp(port);
    this.open.push(r);
    return r;
  }

  async ws(url: string, subprotocol?: string): Promise<RawV5> {
    const r = await RawV5.ws(url, subprotocol);
    this.open.push(r);
    return r;
  }

  /** A TCP peer that is connected (CONNACK 0x00 checked). */
  async connected(port: number, fields: Partial<mqttPacket.IConnectPacket> = {}): Promise<RawV5> {
    const r = await this.tcp(port);
    const ack = await r.connect(fields);
    if (ack.reasonCode !== 0) throw new Error(`CONNACK reason code 0x${(ack.reasonCode ?? 0).toString(16)}`);
    return r;
  }

  async closeAll(): Promise<void> {
    for (const r of this.open.splice(0)) {
      r.destroy();
      await r.closed;
    }
  }
}

/** Parses a reply PUBLISH's payload as the envelope. */
export function envelopeOf(p: { payload: Buffer | string }): { Trace: string; Error: string; Result: unknown } {
  return JSON.parse(p.payload.toString()) as { Trace: string; Error: string; Result: unknown };
}
