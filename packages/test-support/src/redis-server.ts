import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import * as net from 'node:net';
import { delimiter, join } from 'node:path';
import { sleep } from './waits';

/** A Redis for tests. */
export interface RedisUnderTest {
  /** `redis://…` URL to give RedisStorage or ioredis. */
  url: string;
  /** True when the tests started this server (so they may stop and restart it). */
  owned: boolean;
  /** Stops the server (kills the child and waits for it to exit). Owned servers only. */
  stop(): Promise<void>;
  /** Starts the stopped server again on the same port and waits until it answers PING. */
  restart(): Promise<void>;
}

/** Something a test can take down and bring back: an owned server, or a proxy in front of one. */
export type Interruptible = Pick<RedisUnderTest, 'url' | 'stop' | 'restart'>;

const NO_REDIS = "no Redis: set REDIS_URL=redis://host:port, or install Debian's redis-server package (apt-get install redis-server)";
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

/**
 * The Redis the tests use: `REDIS_URL` when set (not owned: `stop`/`restart` reject), else
 * a throwaway `redis-server` child on a free 127.0.0.1 port with persistence off, ready
 * when this resolves. Call `stop()` in `afterAll` for an owned one.
 * @throws Error `no Redis: …` when REDIS_URL is unset and `redis-server` is not installed.
 */
export async function getRedis(): Promise<RedisUnderTest> {
  const url = process.env.REDIS_URL;
  if (url) {
    const notOwned = (what: string) => async () => {
      throw new Error(`${what}() needs a Redis server the tests started, but REDIS_URL=${url} was given`);
    };
    return { url, owned: false, stop: notOwned('stop'), restart: notOwned('restart') };
  }
  return startRedisServer();
}

/** Starts a throwaway `redis-server` on a free port (see {@link getRedis}). */
export async function startRedisServer(): Promise<RedisUnderTest> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      const server = new RedisProcess(port);
      await server.start();
      return {
        url: `redis://127.0.0.1:${port}`,
        owned: true,
        stop: () => server.stop(),
        restart: async () => {
          await server.stop();
          await server.start();
        },
      };
    } catch (err) {
      if (!(err instanceof AddressInUse)) throw err;
      lastError = err; // Someone took the port between our probe and redis-server's bind.
    }
  }
  throw lastError;
}

/** A prefix for the keys of one test: `mqgate-test:<label>:<ms>:<random>:`. */
export function uniquePrefix(label: string): string {
  return `mqgate-test:${label}:${Date.now()}:${randomBytes(4).toString('hex')}:`;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetUrl`'s Redis, whose `stop()` drops every
 * connection and stops listening (clients see the connection close, then refused
 * reconnections) and whose `restart()` listens again on the same port: an outage of a Redis
 * the tests do not own. `stop()` it for good at the end.
 */
export async function startTcpProxy(targetUrl: string): Promise<Interruptible> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 6379);
  const targetHost = target.hostname;
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer((client) => {
        const upstream = net.connect(targetPort, targetHost);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        for (const sock of [client, upstream]) {
          sockets.add(sock);
          sock.on('error', drop);
          sock.on('close', drop);
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });
  await listen();
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  const stop = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  return {
    url: url.toString(),
    stop,
    restart: async () => {
      await stop();
      await listen();
    },
  };
}

class AddressInUse extends Error {}

/** `name`'s path if it is an executable file in a PATH directory, or in `extraDirs`. */
export function onPath(name: string, extraDirs: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

class RedisProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  constructor(readonly port: number) {}

  async start(): Promise<void> {
    const redisServer = onPath('redis-server');
    if (!redisServer) throw new Error(NO_REDIS);
    const args = ['--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--port', String(this.port), '--loglevel', 'warning'];
    // setpriv (util-linux, on every Debian) makes the kernel kill the server when this
    // process dies, even by a signal or with a test that forgot to stop it: no orphans.
    const setpriv = onPath('setpriv');
    const child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'KILL', redisServer, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(redisServer, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      if (output.length < 16_384) output += chunk.toString();
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let exitInfo: string | undefined;
    let spawnError: NodeJS.ErrnoException | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        spawnError = err;
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
      if (spawnError) {
        this.child = undefined;
        throw new Error(`could not run redis-server: ${spawnError.message}`);
      }
      if (exitInfo) {
        this.child = undefined;
        if (/in use/i.test(output)) throw new AddressInUse(`port ${this.port} in use`);
        throw new Error(`redis-server exited (${exitInfo}) before accepting connections: ${output.trim()}`);
      }
      if (await ping(this.port)) {
        // Ready: stop reading its output, and let a server a test forgot to stop not keep
        // jest alive (setpriv's death signal then ends it with this process).
        child.stdout?.destroy();
        child.stderr?.destroy();
        child.unref();
        return;
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`redis-server on port ${this.port} did not answer PING within ${READY_TIMEOUT_MS} ms: ${output.trim()}`);
      }
      await sleep(25);
    }
  }

  /** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS; resolves once the child has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || !this.exited) return;
    child.ref();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, STOP_TIMEOUT_MS);
    });
    await Promise.race([this.exited, killed]);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A port that was free a moment ago (listen on port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** True when something on 127.0.0.1:port answers `PING` with `+PONG` within 500 ms. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}
