// aedes 1.x as a gate, the best way its docs allow: `await Aedes.createBroker()`, authenticate
// accepting, authorizePublish calling back at once and running the echo handler
// asynchronously, the reply sent with client.publish to that client only, authorizeForward
// dropping client-originated packets so requests reach no one else. WebSocket via ws +
// createWebSocketStream (docs/Examples.md).
import { createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { config, echo, serveIpc, serverCommands } from '../lib/common.mjs';

const require = createRequire(import.meta.url);
const cfg = config();
const TRACE = Symbol('trace');
const noop = () => {};
let redisClient;
if (cfg.authRedis) {
  const { Redis } = require('ioredis');
  redisClient = new Redis(cfg.authRedis, { maxRetriesPerRequest: 1 });
}

const broker = await Aedes.createBroker();

broker.authenticate = (client, _username, _password, cb) => {
  if (!redisClient) return cb(null, true);
  redisClient.get(`bench:auth:${client.id}`).then(
    () => cb(null, true),
    (err) => cb(err, false),
  );
};

function reply(client, topic, body) {
  client.publish({ cmd: 'publish', topic, payload: body, qos: 0, retain: false }, noop);
}

broker.authorizePublish = (client, packet, cb) => {
  cb(null);
  if (!client) return; // a will of a dead client
  const topic = packet.topic;
  const payload = packet.payload;
  // The handler runs asynchronously, like an RPC to a module.
  Promise.resolve().then(() => {
    const trace = (client[TRACE] ??= randomBytes(8).toString('hex'));
    if (topic.startsWith('echo/HD_broadcast/')) {
      const body = Buffer.from('{"push":1}');
      let n = 0;
      for (const c of Object.values(broker.clients)) {
        if (c.connected) {
          c.publish({ cmd: 'publish', topic: 'bench/push', payload: body, qos: 0, retain: false }, noop);
          n++;
        }
      }
      reply(client, topic, echo(trace, Buffer.from(JSON.stringify({ delivered: n }))));
      return;
    }
    reply(client, topic, echo(trace, payload));
  });
};

// Requests are for the gate only: never forward a client's PUBLISH to subscribers.
broker.authorizeForward = (_client, packet) => (packet.clientId ? null : packet);

// noDelay: Nagle would hold the PUBACK + reply pair for a delayed ACK (40 ms per QoS 1 request).
const tcp = createServer({ noDelay: true }, broker.handle);
const http = createHttpServer();
const wss = new WebSocketServer({ server: http });
wss.on('connection', (websocket, req) => {
  const stream = createWebSocketStream(websocket);
  broker.handle(stream, req);
});

await new Promise((r) => tcp.listen(0, '127.0.0.1', r));
await new Promise((r) => http.listen(0, '127.0.0.1', r));
serveIpc(
  serverCommands({ stats: () => ({ connections: broker.connectedClients }) }, async () => {
    await new Promise((r) => broker.close(r));
    await redisClient?.quit();
  }),
);
process.send({ type: 'ready', pid: process.pid, tcp: tcp.address().port, ws: http.address().port });
