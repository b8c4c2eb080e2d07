/**
 * Helpers for the split (scale-out) tests: gate processes (the `mqgate` command, as
 * docker-compose.yml runs them) and module processes of the built demo, joined by a real
 * Redis (or NATS), driven by real MQTT clients.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { connect, nextMessage } from './client';
import { DEMO_MAIN, spawnUntil, type DemoProcess } from './demo-process';

/** A running `MQGATE_ROLE=modules` demo process (user, chat, echo; no listeners). */
export interface ModulesProcess {
  child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Kills it at once (SIGKILL: a crash, no deregistration) and waits for it to exit. */
  kill(): Promise<void>;
}

/** Anything these helpers start: both kinds of process can be killed. */
export type AnyProcess = DemoProcess | ModulesProcess;

/**
 * Starts `node packages/demo/dist/main.js` with `MQGATE_ROLE=modules` and waits for its
 * "mqgate demo modules ready: ..." line. `env` must give REDIS_URL (and should give
 * MQGATE_TRANSPORT_PREFIX).
 * @throws Error with the process output when it exits or prints nothing within 15 s.
 */
export async function startModules(env: Record<string, string>): Promise<ModulesProcess> {
  const p = await spawnUntil(
    [DEMO_MAIN],
    { ...process.env, MQGATE_LOG_LEVEL: 'warn', ...env, MQGATE_ROLE: 'modules' },
    /mqgate demo modules ready: /,
    {
      name: 'modules process',
      line: 'ready',
    },
  );
  return { child: p.child, output: p.output, stop: p.stop, kill: p.kill };
}

/** The `mqgate` command (packages/cli), as docker-compose.yml runs the gates. */
export const MQGATE_BIN = join(__dirname, '..', '..', '..', 'cli', 'dist', 'bin.js');
const EXAMPLES = join(__dirname, '..', '..', '..', '..', 'examples');

/** Demo variables a split test may give a gate, and the `mqgate` config keys (as MQGATE_* variables) they become. */
const GATE_VARIABLES: Record<string, string[]> = {
  MQGATE_SERVER_ID: ['MQGATE_SERVER_ID'],
  MQGATE_DUPLICATE_LOGIN_POLICY: ['MQGATE_DUPLICATE_LOGIN_POLICY'],
  MQGATE_DUPLICATE_LOGIN_MAX_SESSIONS_PER_USER: ['MQGATE_DUPLICATE_LOGIN_MAX_SESSIONS_PER_USER'],
  MQGATE_TRANSPORT_TIMEOUT: ['MQGATE_TRANSPORT_TIMEOUT', 'MQGATE_GATE_HANDLER_TIMEOUT'],
  MQGATE_TRANSPORT_REGISTRY_TTL: ['MQGATE_TRANSPORT_REGISTRY_TTL'],
  MQGATE_STORAGE_TTL: ['MQGATE_STORAGE_TTL'],
  MQGATE_GATE_HEARTBEAT_INTERVAL: ['MQGATE_GATE_HEARTBEAT_INTERVAL'],
  MQGATE_LOG_LEVEL: ['MQGATE_LOG_LEVEL'],
};
const SHARED_VARIABLES = new Set(['MQGATE_TRANSPORT_TYPE', 'REDIS_URL', 'NATS_URL', 'MQGATE_TRANSPORT_PREFIX']);

/**
 * The environment of `mqgate gate --config examples/gate.yaml` (gate-nats.yaml for NATS)
 * for a gate the demo variables describe: the same transport, prefix, user index and
 * storage as the demo's modules, the demo's defaults (duplicate login `allow`, registry TTL
 * 3 s on NATS), listeners on OS-chosen loopback ports, no TLS, no drain spread.
 * @throws Error for a demo variable with no `mqgate` equivalent here (add it to GATE_VARIABLES).
 */
export function gateCommandEnv(demo: Record<string, string>): Record<string, string> {
  const nats = demo.MQGATE_TRANSPORT_TYPE === 'nats';
  const out: Record<string, string> = {
    MQGATE_TRANSPORT_PREFIX: demo.MQGATE_TRANSPORT_PREFIX ?? 'mqgate:',
    MQGATE_USER_INDEX_URL: demo.REDIS_URL,
    MQGATE_STORAGE_TYPE: 'redis',
    MQGATE_TCP_PORT: '0',
    MQGATE_TCP_HOST: '127.0.0.1',
    MQGATE_WEBSOCKET_PORT: '0',
    MQGATE_WEBSOCKET_HOST: '127.0.0.1',
    MQGATE_MQTTS_ENABLED: 'false',
    MQGATE_WSS_ENABLED: 'false',
    MQGATE_METRICS_PORT: '0',
    MQGATE_METRICS_HOST: '127.0.0.1',
    MQGATE_LOG_LEVEL: 'warn',
    MQGATE_DUPLICATE_LOGIN_POLICY: 'allow',
    MQGATE_GATE_DRAIN_PERIOD: '0',
    ...(nats ? { MQGATE_TRANSPORT_SERVERS: demo.NATS_URL, MQGATE_TRANSPORT_REGISTRY_TTL: '3000' } : { MQGATE_TRANSPORT_URL: demo.REDIS_URL }),
  };
  for (const [name, value] of Object.entries(demo)) {
    if (SHARED_VARIABLES.has(name)) continue;
    const keys = GATE_VARIABLES[name];
    if (!keys) throw new Error(`split tests: no mqgate equivalent of the demo variable ${name}`);
    for (const k of keys) out[k] = value;
  }
  return out;
}

/**
 * Starts a gate of the split demo with the `mqgate` command (as docker-compose.yml does), on
 * its own OS-chosen ports, and waits for its "mqgate gate listening" line. `env` holds demo
 * variables (see {@link gateCommandEnv}).
 * @throws Error with the process output when it exits or prints nothing within 15 s.
 */
export async function startGate(env: Record<string, string>): Promise<DemoProcess> {
  const config = join(EXAMPLES, env.MQGATE_TRANSPORT_TYPE === 'nats' ? 'gate-nats.yaml' : 'gate.yaml');
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MQGATE_')));
  const p = await spawnUntil([MQGATE_BIN, 'gate', '--config', config], { ...clean, ...gateCommandEnv(env) }, /mqgate gate listening: (.*)\n/, {
    name: 'mqgate gate',
    line: 'listening',
  });
  const addr = Object.fromEntries(p.match[1].split(' ').map((kv) => kv.split('=')));
  const portOf = (a: string | undefined) => (a === undefined ? undefined : Number(a.split(':').pop()));
  const tcpPort = portOf(addr.tcp)!;
  const wsPort = portOf(addr.websocket)!;
  return {
    child: p.child,
    tcpPort,
    wsPort,
    tcpUrl: `mqtt://127.0.0.1:${tcpPort}`,
    wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
    pageUrl: undefined, // the mqgate command serves no demo page
    metricsPort: portOf(addr.metrics),
    output: p.output,
    stop: p.stop,
    kill: p.kill,
  };
}

/**
 * Keeps every process and client a test file starts, so `afterEach`/`afterAll` can end
 * them all: `await cleanup()`.
 */
export class Tracker {
  private readonly processes: AnyProcess[] = [];
  private readonly clients: MqttClient[] = [];

  async gate(env: Record<string, string>): Promise<DemoProcess> {
    return this.keep(await startGate(env));
  }

  async modules(env: Record<string, string>): Promise<ModulesProcess> {
    return this.keep(await startModules(env));
  }

  /** An MQTT.js client (no reconnects), closed at cleanup. */
  async client(url: string, opts: Parameters<typeof connect>[1] = {}): Promise<MqttClient> {
    const c = await connect(url, opts);
    c.setMaxListeners(200); // one listener per call in flight
    closings.set(c, new Promise((resolve) => c.once('close', () => resolve())));
    this.clients.push(c);
    return c;
  }

  /** Closes the clients (forcibly), then kills the processes (SIGKILL) and waits for them. */
  async cleanup(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.endAsync(true)));
    await Promise.all(this.processes.splice(0).map((p) => p.kill()));
  }

  /** Closes only the clients (processes stay). */
  async closeClients(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.endAsync()));
  }

  private keep<T extends AnyProcess>(p: T): T {
    this.processes.push(p);
    return p;
  }
}

/** True while the child process runs. */
export function isAlive(p: AnyProcess): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

const closings = new WeakMap<MqttClient, Promise<void>>();

/** Resolves when the connection of a client from {@link Tracker.client} closes (at once if it already has). */
export function closed(c: MqttClient): Promise<void> {
  const p = closings.get(c);
  if (!p) throw new Error('closed() needs a client made by Tracker.client');
  return p;
}

/** Resolves with the parsed body of the next `gate/kick` push the client gets. */
export async function nextKick(c: MqttClient): Promise<{ reason: string }> {
  return JSON.parse((await nextMessage(c, 'gate/kick')).toString()) as { reason: string };
}

/** Rejects with `what` when `p` has not settled within `ms` (instead of hanging until jest's timeout). */
export { within } from '@mqgate/test-support';

/** Polls until `check` passes or `ms` elapse (only for time-based behaviour: registry TTL expiry). */
export async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
