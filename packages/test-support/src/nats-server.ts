import { answers, givenServer, startServer, type ServerKind, type ServerUnderTest } from './server-process';

/** A NATS server for tests (`stop`/`restart` for owned ones only). */
export type NatsUnderTest = ServerUnderTest;

const NATS: ServerKind = {
  binary: 'nats-server',
  extraDirs: ['/usr/sbin', '/usr/bin'], // Debian installs it in /usr/sbin, not on every PATH
  missing: "no NATS: set NATS_URL=nats://host:port, or install Debian's nats-server package (apt-get install nats-server)",
  args: (port) => ['-a', '127.0.0.1', '-p', String(port)],
  ready: (port) => answers(port, (reply) => (reply.includes('\r\n') ? reply.startsWith('INFO ') : undefined)),
  url: (port) => `nats://127.0.0.1:${port}`,
};

/**
 * The NATS the tests use: `NATS_URL` when set (not owned), else a throwaway `nats-server`
 * child on a free 127.0.0.1 port (never the system's 4222), ready when this resolves. Call
 * `stop()` in `afterAll` for an owned one.
 * @throws Error `no NATS: …` when NATS_URL is unset and `nats-server` is not installed.
 */
export async function getNats(): Promise<NatsUnderTest> {
  const url = process.env.NATS_URL;
  return url ? givenServer('NATS_URL', url) : startNatsServer();
}

/** Starts a throwaway `nats-server` on a free port (see {@link getNats}), even when NATS_URL is set: for outage tests. */
export function startNatsServer(): Promise<NatsUnderTest> {
  return startServer(NATS);
}
