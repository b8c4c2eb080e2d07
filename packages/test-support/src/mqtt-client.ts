/** MQTT.js clients for the tests that talk to a gate (the gate's tests and the demo's). */
import * as mqtt from 'mqtt';

/** MQTT.js client connected to the URL, without reconnects; rejects on connection error. */
export function mqttConnect(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
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
