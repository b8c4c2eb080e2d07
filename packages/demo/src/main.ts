import pino from 'pino';
import { MemoryStorage, RedisStorage, type StorageHandler } from '@mqgate/storage';
import { createDemoApp } from './demo-app';

/**
 * `npm start`: the demo app in one process. Environment:
 * - MQGATE_TCP_PORT (default 3563), MQGATE_WS_PORT (default 3653), MQGATE_HOST (default all interfaces);
 * - REDIS_URL: persist sessions in Redis (RedisStorage); unset: in this process (MemoryStorage);
 * - MQGATE_REDIS_PREFIX (default `mqgate:session:`), MQGATE_SESSION_TTL_MS (default 86 400 000),
 *   MQGATE_HEARTBEAT_MS (default 60 000);
 * - LOG_LEVEL (default info).
 */
function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`${name} must be a port number (0-65535), got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

function ms(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`${name} must be a positive number of milliseconds, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
  const host = process.env.MQGATE_HOST || undefined;
  const ttl = ms('MQGATE_SESSION_TTL_MS', 86_400_000);
  const redisUrl = process.env.REDIS_URL;
  const storage: StorageHandler & { close(): Promise<void> | void } = redisUrl
    ? new RedisStorage({ url: redisUrl, ttl, prefix: process.env.MQGATE_REDIS_PREFIX || undefined })
    : new MemoryStorage({ ttl });
  const { app, gate } = createDemoApp(
    {
      tcp: { port: port('MQGATE_TCP_PORT', 3563), host },
      websocket: { port: port('MQGATE_WS_PORT', 3653), host },
      storage,
      heartbeatInterval: ms('MQGATE_HEARTBEAT_MS', 60_000),
    },
    logger,
  );
  await app.start();
  const { tcp, websocket } = gate.addresses();
  const shown = (h: string) => (h === '::' || h === '0.0.0.0' ? 'localhost' : h.includes(':') ? `[${h}]` : h);
  console.log(
    `mqgate demo listening: mqtt://${shown(tcp!.address)}:${tcp!.port} (MQTT over TCP), ` +
      `ws://${shown(websocket!.address)}:${websocket!.port}/mqtt (MQTT over WebSocket), ` +
      `sessions stored in ${redisUrl ? 'Redis' : 'memory'}`,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    app
      .stop()
      .then(() => storage.close())
      .then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(`mqgate demo failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
