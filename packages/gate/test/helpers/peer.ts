import type { IClientOptions, MqttClient } from 'mqtt';
import { mqttConnect } from './harness';

/** One PUBLISH an MQTT.js client received. */
export interface Msg {
  topic: string;
  payload: Buffer;
  qos: number;
}

/** The reply envelope of a request (mqant wire format). */
export interface Envelope {
  Trace: string;
  Error: string;
  Result: unknown;
}

/** Parses a reply message as an envelope. */
export function parseEnvelope(m: Msg): Envelope {
  return JSON.parse(m.payload.toString('utf8')) as Envelope;
}

/**
 * An MQTT.js client that records every PUBLISH it receives, in order, and can await the
 * first (already received or future) matching one. Subclass it for file-specific verbs;
 * `open` builds the subclass it is called on.
 */
export class RecordingPeer {
  readonly msgs: Msg[] = [];
  private waiters: Array<{ pred: (m: Msg) => boolean; resolve: (m: Msg) => void }> = [];
  /** Resolves when the client's connection has closed. */
  readonly closed: Promise<void>;

  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const m = { topic, payload, qos: packet.qos };
      this.msgs.push(m);
      this.waiters = this.waiters.filter((w) => (w.pred(m) ? (w.resolve(m), false) : true));
    });
    this.closed = new Promise((resolve) => client.once('close', () => resolve()));
  }

  /** Connects an MQTT.js client to the URL and wraps it. */
  static async open<T extends RecordingPeer>(this: new (client: MqttClient) => T, url: string, opts: IClientOptions = {}): Promise<T> {
    return new this(await mqttConnect(url, opts));
  }

  /** The first message (already received or future) matching `pred`. */
  next(pred: (m: Msg) => boolean): Promise<Msg> {
    const found = this.msgs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  publish(topic: string, body: string | Buffer, qos: 0 | 1 | 2 = 0): void {
    this.client.publish(topic, body, { qos });
  }

  /** Publishes and resolves with the raw reply on the same topic (the first one after those already received). */
  async ask(topic: string, body: string | Buffer = '', qos: 0 | 1 | 2 = 0): Promise<Msg> {
    const already = this.msgs.filter((m) => m.topic === topic).length;
    this.publish(topic, body, qos);
    let seen = 0;
    return this.next((m) => m.topic === topic && seen++ >= already);
  }

  /** Publishes and resolves with the parsed reply envelope. */
  async request(topic: string, body: string | Buffer = '', qos: 0 | 1 | 2 = 0): Promise<Envelope> {
    return parseEnvelope(await this.ask(topic, body, qos));
  }

  /** Ends the client: a clean DISCONNECT when still connected. */
  async end(): Promise<void> {
    if (this.client.connected) await this.client.endAsync();
    else this.client.end(true);
  }
}
