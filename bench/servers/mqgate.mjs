// mqgate under test: a Gate + an in-process echo module (createApp + defineModule), or, with
// config.transport === 'redis' or 'nats', one half (gate or module) of a two-process app over
// RedisTransport (config.transportRedis) or NatsTransport (config.transportNats). config.gate:
// more gate options (e.g. resume's); config.userIndexRedis: a RedisUserIndex on that URL (prefix
// config.userIndexPrefix), shared by the gate processes of one app.
import { createRequire } from 'node:module';
import { config, serveIpc, serverCommands } from '../lib/common.mjs';

const require = createRequire(import.meta.url);
const { createApp, defineModule } = require('../../packages/client/dist/index.js');
const { Gate } = require('../../packages/gate/dist/index.js');
const rpc = require('../../packages/rpc/dist/redis/index.js');

const cfg = config();
const PUSH_TOPIC = 'bench/push';

const echoModule = defineModule({
  type: 'echo',
  handlers: {
    // What the demo's echo module does: a JSON object comes back as Result, other bytes raw.
    HD_echo: (_session, payload) => payload,
    // Fan-out: push to every session of the gate (mqant BroadCast).
    HD_broadcast: async (session) => ({ delivered: await session.broadcast(PUSH_TOPIC, Buffer.from('{"push":1}')) }),
  },
});

// Session persistence scenarios: bind + settings, like the demo's user module.
const sessModule = defineModule({
  type: 'sess',
  handlers: {
    HD_login: async (session, payload) => {
      await session.bind(String(payload.userId));
      return { userId: session.userId, settings: session.settings };
    },
    HD_set: async (session, payload) => {
      await session.set(String(payload.key), String(payload.value));
      return { ok: true };
    },
  },
});

let redisClient;
let storage;
const closers = [];

async function main() {
  const gateOptions = {
    tcp: cfg.tcp === false ? false : { port: 0, host: '127.0.0.1' },
    websocket: cfg.ws === false ? false : { port: 0, host: '127.0.0.1' },
    // The bench measures raw peak throughput, against aedes and mosquitto (which have no input
    // rates): one connection of a 1x1 cell sends ~10 000 requests/s, one of 100x10 over 1000/s,
    // above the gate's default messageRate (1000/s, burst 2000) that no game client reaches.
    // So the per-connection input rates are off here.
    messageRate: false,
    byteRate: false,
    // A bulk loopback load (every client from 127.0.0.1, thousands of connections and
    // reconnects a second): the per-address limits at the door are off here, not in the defaults.
    maxConnectionsPerIp: 0,
    connectRate: false,
    flapping: false,
    ...cfg.gate,
  };
  if (cfg.authRedis) {
    const { Redis } = require('ioredis');
    redisClient = new Redis(cfg.authRedis, { maxRetriesPerRequest: 1 });
    closers.push(() => redisClient.quit());
    // One Redis GET per CONNECT (the key need not exist): a token lookup.
    gateOptions.authenticate = async (info) => {
      await redisClient.get(`bench:auth:${info.clientId}`);
      return true;
    };
  }
  if (cfg.storageRedis) {
    const { RedisStorage } = require('../../packages/storage/dist/index.js');
    storage = new RedisStorage({ url: cfg.storageRedis, prefix: cfg.storagePrefix || 'bench:session:' });
    closers.push(() => storage.close());
    gateOptions.storage = storage;
    if (cfg.heartbeatInterval) gateOptions.heartbeatInterval = cfg.heartbeatInterval;
  }
  let transport;
  if (cfg.transport === 'redis') {
    if (typeof rpc.RedisTransport !== 'function') throw new Error('RedisTransport not available in packages/rpc/dist');
    transport = new rpc.RedisTransport({ url: cfg.transportRedis });
  } else if (cfg.transport === 'nats') {
    const { NatsTransport } = require('../../packages/nats/dist/index.js');
    transport = new NatsTransport({ servers: cfg.transportNats });
  }
  let userIndex;
  if (cfg.userIndexRedis) {
    userIndex = new rpc.RedisUserIndex({ url: cfg.userIndexRedis, prefix: cfg.userIndexPrefix });
    closers.push(() => userIndex.close());
  }
  const app = createApp({ ...(transport ? { transport } : {}), ...(userIndex ? { userIndex } : {}) });
  const role = cfg.role || 'both';
  if (role !== 'gate') app.module(echoModule).module(sessModule);
  let gate;
  if (role !== 'module') {
    gate = new Gate(gateOptions);
    app.use(gate);
  }
  await app.start();
  const addr = gate ? gate.addresses() : {};
  serveIpc(
    serverCommands(
      {
        stats: () => (gate ? { ...gate.stats(), counts: gate.counts() } : {}),
        // `count` pushes of `size` bytes to each session (a detached one buffers them); how many were taken.
        fill: ({ sessionIds, count, size, topic = PUSH_TOPIC }) => {
          const body = Buffer.alloc(size, 120);
          let taken = 0;
          for (const sid of sessionIds) for (let i = 0; i < count; i++) if (gate.send(sid, topic, body)) taken++;
          return { taken };
        },
      },
      async () => {
        await app.stop().catch(() => undefined);
        if (transport) await transport.close().catch(() => undefined);
        for (const c of closers) await Promise.resolve(c()).catch(() => undefined);
      },
    ),
  );
  process.send({ type: 'ready', pid: process.pid, tcp: addr.tcp?.port, ws: addr.websocket?.port });
}

main().catch((err) => {
  console.error('mqgate bench server failed:', err);
  process.exit(1);
});
