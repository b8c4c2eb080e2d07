import pino from 'pino';
import { createDemoApp } from './demo-app';

/**
 * `npm start`: the demo app in one process. Environment:
 * - MQGATE_TCP_PORT (default 3563), MQGATE_WS_PORT (default 3653), MQGATE_HOST (default all interfaces);
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

async function main(): Promise<void> {
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
  const host = process.env.MQGATE_HOST || undefined;
  const { app, gate } = createDemoApp(
    {
      tcp: { port: port('MQGATE_TCP_PORT', 3563), host },
      websocket: { port: port('MQGATE_WS_PORT', 3653), host },
    },
    logger,
  );
  await app.start();
  const { tcp, websocket } = gate.addresses();
  const shown = (h: string) => (h === '::' || h === '0.0.0.0' ? 'localhost' : h.includes(':') ? `[${h}]` : h);
  console.log(
    `mqgate demo listening: mqtt://${shown(tcp!.address)}:${tcp!.port} (MQTT over TCP), ` +
      `ws://${shown(websocket!.address)}:${websocket!.port}/mqtt (MQTT over WebSocket)`,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    app.stop().then(
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
