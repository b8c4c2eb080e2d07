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

/** A child process started by {@link spawnUntil}, once it printed its ready line. */
export interface ReadyProcess {
  child: ChildProcess;
  /** The ready line's match. */
  match: RegExpExecArray;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** Sends a signal (default SIGTERM; none once exited) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Kills it at once (SIGKILL: a crash, no graceful stop) and waits for it to exit. */
  kill(): Promise<void>;
}

/**
 * Spawns `node <args>` with `env` and waits until its output matches `ready`.
 * @param what names the process and its ready line in errors, e.g. "demo ... listening".
 * @throws Error with the process output when it exits first, or prints no match within 15 s (then it is killed).
 */
export function spawnUntil(args: string[], env: NodeJS.ProcessEnv, ready: RegExp, what: { name: string; line: string }): Promise<ReadyProcess> {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what.name} did not report ${what.line} within 15 s; output:\n${out}`));
    }, 15_000);
    const onData = () => {
      const match = ready.exec(out);
      if (!match) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve({
        child,
        match,
        output: () => out,
        stop: (signal = 'SIGTERM') => {
          if (alive()) child.kill(signal);
          return exited;
        },
        kill: async () => {
          if (alive()) child.kill('SIGKILL');
          await exited;
        },
      });
    };
    child.stdout!.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${what.name} exited with code ${code} before ${what.line}; output:\n${out}`));
    });
  });
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
      MQGATE_METRICS_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...env,
    },
    /mqtt:\/\/[^:]+:(\d+) .*ws:\/\/[^:]+:(\d+)\/mqtt/,
    { name: 'demo', line: 'listening' },
  );
  const tcpPort = Number(p.match[1]);
  const wsPort = Number(p.match[2]);
  const metrics = /metrics http:\/\/[^:]+:(\d+)\/metrics/.exec(p.output());
  return {
    ...p,
    tcpPort,
    wsPort,
    tcpUrl: `mqtt://127.0.0.1:${tcpPort}`,
    wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
    metricsPort: metrics ? Number(metrics[1]) : undefined,
  };
}
