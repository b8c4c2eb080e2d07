import type * as mqtt from 'mqtt';
import { mqttConnect, nextMessage } from '@mqgate/test-support';

export interface Envelope {
  Trace: string;
  Error: string;
  Result: unknown;
}

/** MQTT.js client without reconnects; rejects on connect failure. Shared with the gate's tests. */
export { mqttConnect as connect, nextMessage };

let seq = 0;
/** Sends a request on `module/HD_x/<fresh msgid>` and resolves with the parsed envelope. */
export async function call(client: mqtt.MqttClient, route: string, body: unknown = {}): Promise<Envelope> {
  const topic = `${route}/${++seq}`;
  const reply = nextMessage(client, topic);
  client.publish(topic, Buffer.isBuffer(body) ? body : JSON.stringify(body));
  return JSON.parse((await reply).toString()) as Envelope;
}

/** Like {@link call}, but throws when the envelope carries an Error; returns Result. */
export async function ok<T = Record<string, unknown>>(client: mqtt.MqttClient, route: string, body: unknown = {}): Promise<T> {
  const env = await call(client, route, body);
  if (env.Error !== '') throw new Error(`${route} failed: ${env.Error}`);
  return env.Result as T;
}
