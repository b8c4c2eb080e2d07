/** A throwaway server child process for tests (redis-server, nats-server): start on a free port, probe until ready, stop. */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import * as net from 'node:net';
import { delimiter, join } from 'node:path';
import { sleep } from './waits';

/** A server the tests use: given by an environment variable (not owned), or started by them. */
export interface ServerUnderTest {
  /** URL to give the client. */
  url: string;
  /** True when the tests started this server (so they may stop and restart it). */
  owned: boolean;
  /** Stops the server (kills the child and waits for it to exit). Owned servers only. */
  stop(): Promise<void>;
  /** Starts the stopped server again on the same port and waits until it is ready. Owned servers only. */
  restart(): Promise<void>;
}

/** What differs between servers. */
export interface ServerKind {
  /** Executable name, e.g. `redis-server`. */
  binary: string;
  /** Also looked for here when not on PATH (Debian puts nats-server in /usr/sbin). */
  extraDirs?: string[];
  /** Error message when the binary is missing. */
  missing: string;
  args(port: number): string[];
  /** True once 127.0.0.1:port answers like this server. */
  ready(port: number): Promise<boolean>;
  url(port: number): string;
}

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

class AddressInUse extends Error {}

/** `url` (from `variable`) as a server the tests do not own: `stop`/`restart` reject. */
export function givenServer(variable: string, url: string): ServerUnderTest {
  const notOwned = (what: string) => async () => {
    throw new Error(`${what}() needs a server the tests started, but ${variable}=${url} was given`);
  };
  return { url, owned: false, stop: notOwned('stop'), restart: notOwned('restart') };
}

/** Starts `kind` on a free 127.0.0.1 port, ready when this resolves; retries when another process takes the port first. */
export async function startServer(kind: ServerKind): Promise<ServerUnderTest> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      const server = new ServerProcess(kind, port);
      await server.start();
      return {
        url: kind.url(port),
        owned: true,
        stop: () => server.stop(),
        restart: async () => {
          await server.stop();
          await server.start();
        },
      };
    } catch (err) {
      if (!(err instanceof AddressInUse)) throw err;
      lastError = err; // Someone took the port between our probe and the server's bind.
    }
  }
  throw lastError;
}

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

class ServerProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  constructor(
    private readonly kind: ServerKind,
    readonly port: number,
  ) {}

  async start(): Promise<void> {
    const { kind, port } = this;
    const bin = onPath(kind.binary, kind.extraDirs);
    if (!bin) throw new Error(kind.missing);
    const args = kind.args(port);
    // setpriv (util-linux, on every Debian) makes the kernel kill the server when this
    // process dies, even by a signal or with a test that forgot to stop it: no orphans.
    const setpriv = onPath('setpriv');
    const child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'KILL', bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
        throw new Error(`could not run ${kind.binary}: ${spawnError.message}`);
      }
      if (exitInfo) {
        this.child = undefined;
        if (/in use/i.test(output)) throw new AddressInUse(`port ${port} in use`);
        throw new Error(`${kind.binary} exited (${exitInfo}) before accepting connections: ${output.trim()}`);
      }
      if (await kind.ready(port)) {
        // Ready: stop reading its output, and let a server a test forgot to stop not keep
        // jest alive (setpriv's death signal then ends it with this process).
        child.stdout?.destroy();
        child.stderr?.destroy();
        child.unref();
        return;
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`${kind.binary} on port ${port} was not ready within ${READY_TIMEOUT_MS} ms: ${output.trim()}`);
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

/** True when a client connecting to 127.0.0.1:port gets an answer `accept` likes within 500 ms (after sending `hello`, if any). */
export function answers(port: number, accept: (reply: string) => boolean | undefined, hello?: string): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    if (hello) socket.on('connect', () => socket.write(hello));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      const verdict = accept(reply);
      if (verdict !== undefined) done(verdict);
    });
    socket.on('error', () => done(false));
  });
}
