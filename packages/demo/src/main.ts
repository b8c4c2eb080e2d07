import pino from 'pino';
import { createApp, stopOnSignals } from '@mqgate/client';
import { Gate } from '@mqgate/gate';
import { InProcessTransport, MemoryUserIndex, type RpcTransport, type UserIndex } from '@mqgate/rpc';
import { NatsTransport } from '@mqgate/nats';
import { RedisTransport, RedisUserIndex } from '@mqgate/rpc/redis';
import { MemoryStorage, RedisStorage, type StorageHandler } from '@mqgate/storage';
import { warnUnknownVariables } from '@mqgate/cli';
import { ConfigError, DEMO_VARIABLES, readConfig, renameVariables, RENAMED_VARIABLES, type DemoConfig } from './config';
import { chatModule } from './modules/chat';
import { echoModule } from './modules/echo';
import { createUserModule } from './modules/user';
import { startWebServer, stopWebServer } from './web-server';

/**
 * `npm start`: the demo. One process by default; split into gate and module processes over
 * Redis or NATS by configuration alone (see config.ts for every variable).
 */
async function main(config: DemoConfig): Promise<void> {
  const logger = pino({ level: config.logLevel });
  const redis = config.transport === 'redis';
  const transport: RpcTransport = redis
    ? new RedisTransport({
        url: config.redisUrl,
        prefix: config.prefix,
        defaultTimeout: config.rpcTimeout,
        registryTtl: config.registryTtl,
        registryInterval: Math.max(50, Math.floor(config.registryTtl / 2)),
        logger,
      })
    : config.transport === 'nats'
      ? new NatsTransport({
          servers: config.natsUrl,
          prefix: natsPrefix(config.prefix),
          defaultTimeout: config.rpcTimeout,
          registryTtl: config.registryTtl,
          logger,
        })
      : new InProcessTransport({ defaultTimeout: config.rpcTimeout });
  const userIndex: UserIndex =
    config.redisUrl && config.transport !== 'inprocess' ? new RedisUserIndex({ url: config.redisUrl, prefix: config.prefix }) : new MemoryUserIndex();
  const storage: (StorageHandler & { close(): Promise<void> | void }) | undefined =
    config.role === 'modules'
      ? undefined
      : config.redisUrl
        ? new RedisStorage({ url: config.redisUrl, ttl: config.sessionTtl, prefix: `${config.prefix}session:` })
        : new MemoryStorage({ ttl: config.sessionTtl });

  const app = createApp({ transport, logger, userIndex });
  if (config.role !== 'gate')
    app
      .module(createUserModule({ jwt: config.jwtSecret !== undefined }))
      .module(chatModule)
      .module(echoModule);
  let gate: Gate | undefined;
  if (config.role !== 'modules') {
    gate = new Gate({
      serverId: config.serverId,
      tcp: { port: config.tcpPort, host: config.host },
      websocket: { port: config.wsPort, host: config.host },
      handlerTimeout: config.rpcTimeout,
      storage,
      heartbeatInterval: config.heartbeatInterval,
      duplicateLogin: { policy: config.duplicateLogin, maxSessionsPerUser: config.maxSessionsPerUser },
      jwt: config.jwtSecret === undefined ? undefined : { secret: config.jwtSecret },
      resumeWindow: config.resumeWindow,
      metricsPort: config.metricsPort,
      metricsHost: config.metricsHost,
      ...config.admission,
    });
    app.use(gate); // last, so it stops first
  }
  await app.start();
  const page = gate ? await startPage(config, gate) : undefined;

  const where = redis ? `Redis ${config.redisUrl}` : config.transport === 'nats' ? `NATS ${config.natsUrl}` : 'this process';
  if (gate) {
    const { tcp, websocket, metrics } = gate.addresses();
    const shown = (h: string) => (h === '::' || h === '0.0.0.0' ? 'localhost' : h.includes(':') ? `[${h}]` : h);
    console.log(
      `mqgate demo listening: mqtt://${shown(tcp!.address)}:${tcp!.port} (MQTT over TCP), ` +
        `ws://${shown(websocket!.address)}:${websocket!.port}/mqtt (MQTT over WebSocket), ` +
        `sessions stored in ${config.redisUrl ? 'Redis' : 'memory'}, role ${config.role}, gate ${gate.serverId}, RPC over ${where}` +
        (config.jwtSecret ? ', JWT required at CONNECT' : '') +
        (metrics ? `, metrics http://${shown(metrics.address)}:${metrics.port}/metrics` : '') +
        (page ? `, page http://${shown(page.address.address)}:${page.address.port}/ (the chat, in a browser)` : ''),
    );
  } else {
    console.log(`mqgate demo modules ready: user, chat, echo, RPC over ${where}`);
  }

  stopOnSignals(logger, async () => {
    await app.stop();
    if (page) await stopWebServer(page.server);
    await storage?.close();
    await userIndex.close?.();
    if (config.transport !== 'inprocess') await transport.close();
  });
}

/**
 * The demo page's HTTP server (web-server.ts) beside the gate, or undefined when turned off, or
 * when the default port is taken (a warning: a second demo on this machine still starts).
 * @throws Error when an MQGATE_HTTP_PORT that was set cannot be bound.
 */
async function startPage(config: DemoConfig, gate: Gate): Promise<Awaited<ReturnType<typeof startWebServer>> | undefined> {
  if (config.httpPort === false) return undefined;
  const ws = gate.addresses().websocket!;
  try {
    return await startWebServer(config.httpPort, config.host, { wsPort: ws.port, wsPath: '/mqtt', jwt: config.jwtSecret !== undefined });
  } catch (err) {
    if (config.httpPortSet || (err as { code?: string }).code !== 'EADDRINUSE') throw err;
    console.warn(`mqgate demo: port ${config.httpPort} is taken, so the page is not served (set MQGATE_HTTP_PORT to another port, or off)`);
    return undefined;
  }
}

/** The Redis key prefix as a NATS subject prefix: `mqgate:` → `mqgate` (subject tokens are dot-separated). */
function natsPrefix(prefix: string): string {
  return prefix.replace(/[^A-Za-z0-9_-]+/g, '.').replace(/^\.+|\.+$/g, '') || 'mqgate';
}

let config: DemoConfig;
warnUnknownVariables('mqgate demo', process.env, [...DEMO_VARIABLES, ...Object.keys(RENAMED_VARIABLES)]);
for (const line of renameVariables(process.env).warnings) console.warn(`mqgate demo: warning: ${line}`);
try {
  config = readConfig();
} catch (err) {
  console.error(err instanceof ConfigError ? `mqgate demo: ${err.message}` : err);
  process.exit(2);
}
main(config).catch((err: unknown) => {
  console.error(`mqgate demo failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
