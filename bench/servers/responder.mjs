// The mosquitto responder: one raw mqtt-packet client subscribed to `+/+/+` that answers a
// request on `<module>/<clientid>/<msgid>` with the echo envelope on
// `reply/<clientid>/<module>/<msgid>` (4 levels, so it does not match its own subscription).
// `bcast/<clientid>/<msgid>` publishes one message on `bcast/all`, which every load client
// subscribed to (the broker fans it out), and replies with the count it cannot know (-1).
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { config, echo, serveIpc, serverCommands } from '../lib/common.mjs';

const require = createRequire(import.meta.url);
const mqtt = require('mqtt-packet');
const cfg = config();
const V4 = { protocolVersion: 4 };
const trace = randomBytes(8).toString('hex');

const socket = connect({ host: '127.0.0.1', port: cfg.brokerPort, noDelay: true });
const parser = mqtt.parser(V4);
let ready;
const subscribed = new Promise((r) => (ready = r));
let handled = 0;
parser.on('packet', (p) => {
  if (p.cmd === 'connack') {
    if (p.returnCode !== 0) throw new Error(`responder CONNACK ${p.returnCode}`);
    socket.write(mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '+/+/+', qos: 0 }] }, V4));
  } else if (p.cmd === 'suback') {
    ready();
  } else if (p.cmd === 'publish') {
    const a = p.topic.indexOf('/');
    const b = p.topic.indexOf('/', a + 1);
    const mod = p.topic.slice(0, a);
    const cid = p.topic.slice(a + 1, b);
    const msgid = p.topic.slice(b + 1);
    handled++;
    if (mod === 'bcast') {
      socket.write(mqtt.generate({ cmd: 'publish', topic: 'bcast/all', payload: Buffer.from('{"push":1}'), qos: 0, retain: false, dup: false }, V4));
      socket.write(
        mqtt.generate(
          {
            cmd: 'publish',
            topic: `reply/${cid}/${mod}/${msgid}`,
            payload: echo(trace, Buffer.from('{"delivered":-1}')),
            qos: 0,
            retain: false,
            dup: false,
          },
          V4,
        ),
      );
      return;
    }
    socket.write(
      mqtt.generate(
        { cmd: 'publish', topic: `reply/${cid}/${mod}/${msgid}`, payload: echo(trace, p.payload), qos: 0, retain: false, dup: false },
        V4,
      ),
    );
  }
});
parser.on('error', (err) => {
  console.error('responder parse error', err);
  process.exit(1);
});
socket.on('data', (b) => parser.parse(b));
socket.on('error', (err) => {
  console.error('responder socket error', err.message);
  process.exit(1);
});
socket.on('close', () => process.exit(0));
socket.on('connect', () =>
  socket.write(
    mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `responder-${process.pid}`, keepalive: 0 }, V4),
  ),
);
await subscribed;
serveIpc(serverCommands({ stats: () => ({ handled }) }, async () => socket.end()));
process.send({ type: 'ready', pid: process.pid });
