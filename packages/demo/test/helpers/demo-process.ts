import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

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
export function startDemo(env: Record<string, string> = {}): Promise<DemoProcess> {
  const child = spawn(process.execPath, [DEMO_MAIN], {
    env: {
      ...process.env,
      MQGATE_TCP_PORT: '0',
      MQGATE_WS_PORT: '0',
      MQGATE_HOST: '127.0.0.1',
      MQGATE_METRICS_PORT: '0',
      MQGATE_METRICS_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`demo did not report listening within 15 s; output:\n${out}`));
    }, 15_000);
    const onData = () => {
      const m = /mqtt:\/\/[^:]+:(\d+) .*ws:\/\/[^:]+:(\d+)\/mqtt/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      const tcpPort = Number(m[1]);
      const wsPort = Number(m[2]);
      const metrics = /metrics http:\/\/[^:]+:(\d+)\/metrics/.exec(out);
      resolve({
        child,
        tcpPort,
        wsPort,
        tcpUrl: `mqtt://127.0.0.1:${tcpPort}`,
        wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
        metricsPort: metrics ? Number(metrics[1]) : undefined,
        output: () => out,
        stop: (signal = 'SIGTERM') => {
          if (child.exitCode !== null || child.signalCode !== null) return exited;
          child.kill(signal);
          return exited;
        },
        kill: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        },
      });
    };
    child.stdout!.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`demo exited with code ${code} before listening; output:\n${out}`));
    });
  });
}
