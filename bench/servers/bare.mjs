// The ceiling: a minimal MQTT endpoint on mqtt-packet + net (+ ws). CONNECT→CONNACK,
// PUBLISH→(PUBACK for QoS 1) + reply PUBLISH with the same envelope as mqgate,
// PINGREQ→PINGRESP, DISCONNECT closes. Nothing else. MQTT 5 too (the parser switches at a v5
// CONNECT): a PUBLISH with a Response Topic is answered there with its Correlation Data,
// Content Type application/json and Payload Format Indicator 1, as mqgate does.
import { createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { config, echo, serveIpc, serverCommands } from '../lib/common.mjs';

const require = createRequire(import.meta.url);
const mqtt = require('mqtt-packet');
const { WebSocketServer } = require('ws');

const cfg = config();
const V4 = { protocolVersion: 4 };
const V5 = { protocolVersion: 5 };
const CONNACK = mqtt.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }, V4);
const CONNACK_V5 = mqtt.generate({ cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: {} }, V5);
const PINGRESP = mqtt.generate({ cmd: 'pingresp' }, V4);
const conns = new Set();
let redisClient;
if (cfg.authRedis) {
  const { Redis } = require('ioredis');
  redisClient = new Redis(cfg.authRedis, { maxRetriesPerRequest: 1 });
}

function attach(write, end) {
  const parser = mqtt.parser(V4);
  const conn = { write, end, trace: randomBytes(8).toString('hex'), connected: false, opts: V4 };
  parser.on('packet', (p) => {
    switch (p.cmd) {
      case 'connect': {
        if (p.protocolVersion === 5) conn.opts = V5;
        const connack = conn.opts === V5 ? CONNACK_V5 : CONNACK;
        if (redisClient) {
          redisClient.get(`bench:auth:${p.clientId}`).then(() => {
            conn.connected = true;
            write(connack);
          }, end);
        } else {
          conn.connected = true;
          write(connack);
        }
        break;
      }
      case 'publish':
        if (p.qos === 1) write(mqtt.generate({ cmd: 'puback', messageId: p.messageId }, conn.opts));
        if (p.properties?.responseTopic) {
          const properties = { contentType: 'application/json', payloadFormatIndicator: true };
          if (p.properties.correlationData) properties.correlationData = p.properties.correlationData;
          const reply = {
            cmd: 'publish',
            topic: p.properties.responseTopic,
            payload: echo(conn.trace, p.payload),
            qos: 0,
            retain: false,
            dup: false,
            properties,
          };
          write(mqtt.generate(reply, V5));
          break;
        }
        if (p.topic.startsWith('echo/HD_broadcast/')) {
          const body = Buffer.from('{"push":1}');
          const push = mqtt.generate({ cmd: 'publish', topic: 'bench/push', payload: body, qos: 0, retain: false, dup: false }, V4);
          let n = 0;
          for (const c of conns) {
            if (!c.connected) continue;
            c.write(push);
            n++;
          }
          write(
            mqtt.generate(
              {
                cmd: 'publish',
                topic: p.topic,
                payload: echo(conn.trace, Buffer.from(JSON.stringify({ delivered: n }))),
                qos: 0,
                retain: false,
                dup: false,
              },
              conn.opts,
            ),
          );
          break;
        }
        write(mqtt.generate({ cmd: 'publish', topic: p.topic, payload: echo(conn.trace, p.payload), qos: 0, retain: false, dup: false }, conn.opts));
        break;
      case 'pingreq':
        write(PINGRESP);
        break;
      case 'disconnect':
        end();
        break;
      default:
        break;
    }
  });
  parser.on('error', () => end());
  conns.add(conn);
  return { parse: (b) => parser.parse(b), gone: () => conns.delete(conn) };
}

const tcp = createServer({ noDelay: true }, (socket) => {
  const c = attach(
    (b) => socket.write(b),
    () => socket.end(),
  );
  // Replies to every packet of one read go out in one write (what a careful endpoint does).
  socket.on('data', (b) => {
    socket.cork();
    c.parse(b);
    socket.uncork();
  });
  socket.on('error', () => {});
  socket.on('close', c.gone);
});
const http = createHttpServer();
const wss = new WebSocketServer({
  server: http,
  perMessageDeflate: false,
  clientTracking: false,
  handleProtocols: (ps) => (ps.has('mqtt') ? 'mqtt' : false),
});
wss.on('connection', (ws) => {
  const c = attach(
    (b) => ws.send(b),
    () => ws.close(),
  );
  ws.on('message', c.parse);
  ws.on('error', () => {});
  ws.on('close', c.gone);
});

await new Promise((r) => tcp.listen(0, '127.0.0.1', r));
await new Promise((r) => http.listen(0, '127.0.0.1', r));
serveIpc(serverCommands({ stats: () => ({ connections: conns.size }) }, async () => redisClient?.quit()));
process.send({ type: 'ready', pid: process.pid, tcp: tcp.address().port, ws: http.address().port });
