import { connect as netConnect, type Socket } from 'node:net';
import * as mqtt from 'mqtt';
import { InProcessTransport, MemoryUserIndex, silentLogger, type RpcHandler } from '@mqgate/rpc';
import { Gate, type GateOptions } from '@mqgate/gate';
import { RawPeer } from './raw-peer';

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
  await gate.start({ transport, logger: silentLogger, userIndex: new MemoryUserIndex() });
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

/** The MQTT protocol levels the gate speaks: 3 (MQTT 3.1), 4 (MQTT 3.1.1) and 5 (MQTT 5). */
export const VERSIONS = [3, 4, 5] as const;

/** The levels before MQTT 5, for rules MQTT 5 states differently (return codes, no DISCONNECT from the server). */
export const V3_VERSIONS = [3, 4] as const;

/** MQTT.js options for a protocol level (3 needs the protocol name 'MQIsdp'). */
export const mqttOpts = (v: 3 | 4 | 5): mqtt.IClientOptions => ({ protocolVersion: v, protocolId: v === 3 ? 'MQIsdp' : 'MQTT' });

/** MQTT.js client connected to the URL, without reconnects (shared with the demo's tests). */
export { mqttConnect } from '@mqgate/test-support';

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
export class RawClient extends RawPeer {
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    super('raw');
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

  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
