import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { freePort, onPath } from './redis-server';
import { sleep } from './waits';

/** A NATS server for tests. */
export interface NatsUnderTest {
  /** `nats://127.0.0.1:<port>` (or NATS_URL) to give NatsTransport. */
  url: string;
  /** True when the tests started this server (so they may stop and restart it). */
  owned: boolean;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and waits for it to exit. Owned servers only. */
  stop(): Promise<void>;
  /** Starts the stopped server again on the same port and waits until it accepts clients. */
  restart(): Promise<void>;
}

const NO_NATS = "no NATS: set NATS_URL=nats://host:port, or install Debian's nats-server package (apt-get install nats-server)";
const READY_TIMEOUT_MS = 10_000;

/**
 * The NATS the tests use: `NATS_URL` when set (not owned: `stop`/`restart` reject), else a
 * throwaway `nats-server` child on a free 127.0.0.1 port (never 4222), ready when this
 * resolves. Call `stop()` in `afterAll` for an owned one.
 * @throws Error `no NATS: …` when NATS_URL is unset and `nats-server` is not installed.
 */
export async function getNats(): Promise<NatsUnderTest> {
  const url = process.env.NATS_URL;
  if (url) {
    const notOwned = (what: string) => async () => {
      throw new Error(`${what}() needs a NATS server the tests started, but NATS_URL=${url} was given`);
    };
    return { url, owned: false, stop: notOwned('stop'), restart: notOwned('restart') };
  }
  return startNatsServer();
}

/** Starts a throwaway `nats-server` on a free port (see {@link getNats}); retries when another process takes the port first. */
export async function startNatsServer(): Promise<NatsUnderTest> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const server = new NatsProcess(port);
    try {
      await server.start();
      return { url: `nats://127.0.0.1:${port}`, owned: true, stop: () => server.stop(), restart: () => server.start() };
    } catch (err) {
      lastError = err;
      if (!/address already in use/i.test(String(err))) throw err;
    }
  }
  throw lastError;
}

class NatsProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(readonly port: number) {}

  async start(): Promise<void> {
    await this.stop();
    const bin = onPath('nats-server', ['/usr/sbin', '/usr/bin']); // Debian installs it in /usr/sbin
    if (!bin) throw new Error(NO_NATS);
    const args = ['-a', '127.0.0.1', '-p', String(this.port)];
    // setpriv: the kernel kills the server when this process dies (no orphans), as for Redis.
    const setpriv = onPath('setpriv');
    const child = setpriv ? spawn(setpriv, ['--pdeathsig', 'KILL', bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      if (output.length < 16_384) output += chunk.toString();
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let exitInfo: string | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('error', (err) => {
        exitInfo = `spawn error: ${err.message}`;
        resolve();
      });
      child.once('exit', (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
    });
    this.child = child;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (exitInfo) {
        this.child = undefined;
        throw new Error(`nats-server exited (${exitInfo}) before accepting clients: ${output.trim()}`);
      }
      if (await greets(this.port)) {
        child.stdout?.destroy();
        child.stderr?.destroy();
        child.unref();
        return;
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`nats-server on port ${this.port} did not accept clients within ${READY_TIMEOUT_MS} ms: ${output.trim()}`);
      }
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.ref();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** True when something on 127.0.0.1:port sends a NATS `INFO` greeting within 500 ms. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.on('data', (chunk) => done(chunk.toString().startsWith('INFO ')));
    socket.on('error', () => done(false));
  });
}
