import { connect as netConnect, type Socket } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import * as mqtt from 'mqtt';
import { InProcessTransport, silentLogger, type RpcHandler } from '@mqgate/rpc';
import { Gate, type GateOptions } from '@mqgate/gate';

/** A started gate on OS-chosen loopback ports with an in-process transport. */
export interface Harness {
  gate: Gate;
  transport: InProcessTransport;
  tcpUrl: string;
  wsUrl: string;
  tcpPort: number;
  wsPort: number;
  /** Serves a module type with a raw RPC handler. */
  serve(moduleType: string, handler: RpcHandler, serverId?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startGate(options: GateOptions = {}): Promise<Harness> {
  const transport = new InProcessTransport();
  const gate = new Gate({
    tcp: { port: 0, host: '127.0.0.1' },
    websocket: { port: 0, host: '127.0.0.1' },
    ...options,
  });
  await gate.start({ transport, logger: silentLogger });
  const a = gate.addresses();
  const tcpPort = a.tcp?.port ?? 0;
  const wsPort = a.websocket?.port ?? 0;
  return {
    gate,
    transport,
    tcpPort,
    wsPort,
    tcpUrl: `mqtt://127.0.0.1:${tcpPort}`,
    wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
    serve: async (moduleType, handler, serverId) => {
      await transport.serve({ serverId: serverId ?? `${moduleType}@test`, moduleType }, handler);
    },
    stop: async () => {
      await gate.stop();
      await transport.close();
    },
  };
}

/** MQTT.js client connected to the URL; rejects on connection error. */
export function mqttConnect(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
}

/** Sends a request and resolves with the parsed reply envelope on the same topic. */
export function request(
  client: mqtt.MqttClient,
  topic: string,
  body: string | Buffer,
  qos: 0 | 1 | 2 = 0,
): Promise<{ Trace: string; Error: string; Result: unknown }> {
  return new Promise((resolve, reject) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      client.off('message', onMessage);
      try {
        resolve(JSON.parse(payload.toString()));
      } catch (err) {
        reject(err);
      }
    };
    client.on('message', onMessage);
    client.publish(topic, body, { qos });
  });
}

/**
 * A raw MQTT peer on a TCP socket: write packets or bytes, await parsed packets, await close.
 * For malformed and edge input that MQTT.js will not send.
 */
export class RawClient {
  readonly packets: mqttPacket.Packet[] = [];
  private waiters: Array<{ pred: (p: mqttPacket.Packet) => boolean; resolve: (p: mqttPacket.Packet) => void }> = [];
  readonly closed: Promise<void>;
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 });

  private constructor(readonly socket: Socket) {
    this.parser.on('packet', (p: mqttPacket.Packet) => {
      this.packets.push(p);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(p)) return true;
        w.resolve(p);
        return false;
      });
    });
    socket.on('data', (d) => this.parser.parse(d));
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = netConnect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  send(packet: mqttPacket.Packet, protocolVersion = 4): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion }));
  }

  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Sends CONNECT (3.1.1, clean, keepalive 60 unless overridden) and awaits CONNACK. */
  async connect(fields: Partial<mqttPacket.IConnectPacket> = {}): Promise<mqttPacket.IConnackPacket> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'raw', keepalive: 60, ...fields });
    return (await this.next('connack')) as mqttPacket.IConnackPacket;
  }

  /** Resolves with the first packet (already received or future) of that type matching `pred`. */
  next(cmd: mqttPacket.PacketCmd, pred: (p: mqttPacket.Packet) => boolean = () => true): Promise<mqttPacket.Packet> {
    const match = (p: mqttPacket.Packet) => p.cmd === cmd && pred(p);
    const idx = this.packets.findIndex(match);
    if (idx >= 0) return Promise.resolve(this.packets.splice(idx, 1)[0]);
    return new Promise((resolve) =>
      this.waiters.push({
        pred: match,
        resolve: (p) => {
          this.packets.splice(this.packets.indexOf(p), 1);
          resolve(p);
        },
      }),
    );
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
