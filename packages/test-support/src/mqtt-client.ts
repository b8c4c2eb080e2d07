/** MQTT.js clients for the tests that talk to a gate (the gate's tests and the demo's). */
import * as mqtt from 'mqtt';

/**
 * MQTT.js client connected to the URL, without reconnects. Rejects on a connection error, a
 * refusing CONNACK, and a connection the server closes before its CONNACK (MQTT.js's own
 * `connectAsync` never settles then, so a refused connection, such as one over the gate's
 * `connectRate`, would surface as a test timeout instead of this error).
 */
export function mqttConnect(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  return new Promise((resolve, reject) => {
    const settle = (err?: Error): void => {
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
      if (!err) return resolve(client);
      client.end(true);
      reject(err);
    };
    const onConnect = (): void => settle();
    const onError = (err: Error): void => settle(err);
    const onClose = (): void => settle(new Error(`${url}: the server closed the connection before its CONNACK`));
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

/** Resolves with the next message on `topic` received by an MQTT.js client. */
export function nextMessage(c: mqtt.MqttClient, topic: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const on = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      c.off('message', on);
      resolve(payload);
    };
    c.on('message', on);
  });
}
