import type { ChildProcess } from 'node:child_process';
import { spawnUntil } from '@mqgate/test-support';
import { join } from 'node:path';

export { spawnUntil, type ReadyProcess } from '@mqgate/test-support';

/** Path of the built demo entry point (npm test builds before jest runs). */
export const DEMO_MAIN = join(__dirname, '..', '..', 'dist', 'main.js');

/** A running demo process on OS-chosen loopback ports. */
export interface DemoProcess {
  child: ChildProcess;
  tcpPort: number;
  wsPort: number;
  tcpUrl: string;
  wsUrl: string;
  /** The ops server's port (`/metrics`, `/readyz`), undefined with MQGATE_METRICS_PORT=off. */
  metricsPort: number | undefined;
  /** The demo page's URL (`http://127.0.0.1:<port>/`), undefined with MQGATE_HTTP_PORT=off. */
  pageUrl: string | undefined;
  /** Everything the process printed so far. */
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Kills it at once (a crash, no graceful stop). */
  kill(): Promise<void>;
}

/**
 * Starts `node packages/demo/dist/main.js` with ports 0 (metrics too, so that concurrent demos
 * never fight for 9563) and waits for its "listening" line.
 * @throws Error with the process output when it exits or prints nothing within 15 s.
 */
export async function startDemo(env: Record<string, string> = {}): Promise<DemoProcess> {
  const p = await spawnUntil(
    [DEMO_MAIN],
    {
      ...process.env,
      MQGATE_TCP_PORT: '0',
      MQGATE_WEBSOCKET_PORT: '0',
      MQGATE_HOST: '127.0.0.1',
      MQGATE_METRICS_PORT: '0',
      MQGATE_HTTP_PORT: '0',
      MQGATE_METRICS_HOST: '127.0.0.1',
      MQGATE_LOG_LEVEL: 'warn',
      ...env,
    },
    /mqtt:\/\/[^:]+:(\d+) .*ws:\/\/[^:]+:(\d+)\/mqtt/,
    { name: 'demo', line: 'listening' },
  );
  const tcpPort = Number(p.match[1]);
  const wsPort = Number(p.match[2]);
  const metrics = /metrics http:\/\/[^:]+:(\d+)\/metrics/.exec(p.output());
  const page = /page http:\/\/[^:]+:(\d+)\//.exec(p.output());
  return {
    ...p,
    tcpPort,
    wsPort,
    tcpUrl: `mqtt://127.0.0.1:${tcpPort}`,
    wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
    metricsPort: metrics ? Number(metrics[1]) : undefined,
    pageUrl: page ? `http://127.0.0.1:${page[1]}/` : undefined,
  };
}
