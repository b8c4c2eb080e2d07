import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { answers, givenServer, startServer, type ServerKind, type ServerUnderTest } from './server-process';

/** A Redis for tests (`stop`/`restart` for owned ones only). */
export type RedisUnderTest = ServerUnderTest;

/** Something a test can take down and bring back: an owned server, or a proxy in front of one. */
export type Interruptible = Pick<RedisUnderTest, 'url' | 'stop' | 'restart'>;

const REDIS: ServerKind = {
  binary: 'redis-server',
  missing: "no Redis: set REDIS_URL=redis://host:port, or install Debian's redis-server package (apt-get install redis-server)",
  args: (port) => ['--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--port', String(port), '--loglevel', 'warning'],
  ready: (port) => answers(port, (reply) => (reply.includes('\r\n') ? reply.startsWith('+PONG') : undefined), 'PING\r\n'),
  url: (port) => `redis://127.0.0.1:${port}`,
};

/**
 * The Redis the tests use: `REDIS_URL` when set (not owned: `stop`/`restart` reject), else
 * a throwaway `redis-server` child on a free 127.0.0.1 port with persistence off, ready
 * when this resolves. Call `stop()` in `afterAll` for an owned one.
 * @throws Error `no Redis: …` when REDIS_URL is unset and `redis-server` is not installed.
 */
export async function getRedis(): Promise<RedisUnderTest> {
  const url = process.env.REDIS_URL;
  return url ? givenServer('REDIS_URL', url) : startRedisServer();
}

/** Starts a throwaway `redis-server` on a free port (see {@link getRedis}). */
export function startRedisServer(): Promise<RedisUnderTest> {
  return startServer(REDIS);
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
