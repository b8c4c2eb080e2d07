import type * as mqtt from 'mqtt';
import type { IConnectPacket } from 'mqtt-packet';
import { mqttConnect, RawClient } from './harness';
import { RawWs, type RawWsOptions } from './raw-ws';

/**
 * The client connections a test file opens, so that one `afterEach(() => conns.closeAll())`
 * closes them all: MQTT.js clients (ended at once) and raw TCP / WebSocket peers (destroyed,
 * then their close awaited).
 */
export class Connections {
  readonly clients: mqtt.MqttClient[] = [];
  readonly raws: Array<RawClient | RawWs> = [];

  /** An MQTT.js client connected to the URL. */
  async mqtt(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
    const c = await mqttConnect(url, opts);
    this.clients.push(c);
    return c;
  }

  /** A raw TCP peer, not connected at the MQTT level yet. */
  async raw(port: number): Promise<RawClient> {
    const raw = await RawClient.open(port);
    this.raws.push(raw);
    return raw;
  }

  /** A raw TCP peer that has sent CONNECT with this client id and got CONNACK 0. */
  async connectedRaw(port: number, clientId: string, fields: Partial<IConnectPacket> = {}): Promise<RawClient> {
    const raw = await this.raw(port);
    expect((await raw.connect({ clientId, ...fields })).returnCode).toBe(0);
    return raw;
  }

  /** A raw WebSocket peer, upgraded but not connected at the MQTT level yet. */
  async ws(url: string, opts: RawWsOptions = {}): Promise<RawWs> {
    const ws = await RawWs.open(url, opts);
    this.raws.push(ws);
    return ws;
  }

  /** A raw WebSocket peer that has sent CONNECT with this client id and got CONNACK 0. */
  async connectedWs(url: string, clientId: string): Promise<RawWs> {
    const ws = await this.ws(url);
    expect((await ws.connect({ clientId })).returnCode).toBe(0);
    return ws;
  }

  /** Ends every MQTT.js client, then destroys every raw peer and awaits its close. */
  async closeAll(): Promise<void> {
    for (const c of this.clients.splice(0)) c.end(true);
    for (const r of this.raws.splice(0)) {
      r.destroy();
      await r.closed;
    }
  }
}
