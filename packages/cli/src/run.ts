import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino, { type Logger } from 'pino';
import { createApp, stopOnSignals, type ModuleDefinition } from '@mqgate/client';
import { Gate, type GateOptions, type TlsListenOptions } from '@mqgate/gate';
import { NatsTransport } from '@mqgate/nats';
import type { RpcTransport } from '@mqgate/rpc';
import { RedisTransport, RedisUserIndex } from '@mqgate/rpc/redis';
import { MemoryStorage, RedisStorage } from '@mqgate/storage';
import { ConfigError, natsServers, userIndexUrl, type Config } from './config';

type Closer = () => Promise<void> | void;

/**
 * The transport of `transport.type`: a RedisTransport on `transport.url`, or a NatsTransport
 * on `transport.servers` (subjects prefixed with `transport.prefix` less a trailing `:`).
 */
function transportOf(c: Config, logger: Logger): RpcTransport {
  const ttl = c.get<number>('transport.registryTtl');
  if (c.get<string>('transport.type') === 'nats') {
    return new NatsTransport({
      servers: natsServers(c),
      prefix: c.get<string>('transport.prefix').replace(/:+$/, ''),
      defaultTimeout: c.get<number>('transport.timeout'),
      registryTtl: ttl,
      logger,
    });
  }
  return new RedisTransport({
    url: c.get<string>('transport.url'),
    prefix: c.get<string>('transport.prefix'),
    defaultTimeout: c.get<number>('transport.timeout'),
    registryTtl: ttl,
    registryInterval: Math.max(50, Math.floor(ttl / 2)),
    logger,
  });
}

function tlsListener(c: Config, which: 'mqtts' | 'wss'): TlsListenOptions | false {
  if (!c.get<boolean>(`${which}.enabled`)) return false;
  const ca = c.get<string[] | undefined>('tls.ca');
  return {
    port: c.get<number>(`${which}.port`),
    host: c.get<string | undefined>(`${which}.host`),
    key: c.path('tls.key')!,
    cert: c.path('tls.cert')!,
    ca: ca?.map((p) => resolve(c.dir, p)),
    passphrase: c.get<string | undefined>('tls.passphrase'),
    requestCert: c.get<boolean>('tls.requestCert'),
    watch: c.get<boolean>('tls.watch'),
    ...(which === 'mqtts' && { proxyProtocol: c.get<boolean>('mqtts.proxyProtocol') }),
  };
}

/** GateOptions from a config (the `gate.*` keys as they are, the sections mapped). */
export function gateOptions(c: Config): GateOptions {
  const opts: Record<string, unknown> = {};
  for (const [key, value] of c.values) if (key.startsWith('gate.')) opts[key.slice(5)] = value;
  const listen = (which: 'tcp' | 'websocket') =>
    c.get<boolean>(`${which}.enabled`) ? { port: c.get<number>(`${which}.port`), host: c.get<string | undefined>(`${which}.host`) } : false;
  const tcp = listen('tcp');
  return {
    ...(opts as GateOptions),
    serverId: c.get<string | undefined>('serverId'),
    tcp: tcp && { ...tcp, proxyProtocol: c.get<boolean>('tcp.proxyProtocol') },
    websocket: listen('websocket'),
    mqtts: tlsListener(c, 'mqtts'),
    wss: tlsListener(c, 'wss'),
    metricsPort: c.get<boolean>('metrics.enabled') ? c.get<number>('metrics.port') : false,
    metricsHost: c.get<string | undefined>('metrics.host'),
    duplicateLogin: { policy: c.get('duplicateLogin.policy'), maxSessionsPerUser: c.get<number | undefined>('duplicateLogin.maxSessionsPerUser') },
  };
}

/**
 * Stops on SIGTERM / SIGINT: `first` (a drain for the gate), then `closers`; a second
 * signal runs `again` (the rest of the drain at once). Exit code 0, or 1 when the stop failed.
 */
function onSignals(logger: Logger, first: () => Promise<void>, again: () => void, closers: Closer[]): void {
  stopOnSignals(
    logger,
    async () => {
      await first();
      for (const close of closers) await close();
    },
    again,
  );
}

/** `mqgate gate`: a gate whose modules run elsewhere. Prints one "mqgate gate listening" line with the addresses. */
export async function runGate(c: Config): Promise<void> {
  const logger = pino({ level: c.get<string>('log.level') });
  const transport = transportOf(c, logger);
  const url = userIndexUrl(c);
  const prefix = c.get<string>('transport.prefix');
  const userIndex = new RedisUserIndex({ url, prefix });
  const ttl = c.get<number>('storage.ttl');
  const storage =
    c.get<string>('storage.type') === 'redis'
      ? new RedisStorage({ url: c.get<string | undefined>('storage.url') ?? url, ttl, prefix: `${prefix}session:` })
      : new MemoryStorage({ ttl });
  const gate = new Gate({ ...gateOptions(c), storage });
  const app = createApp({ transport, logger, userIndex });
  app.use(gate);
  await app.start();
  process.on('SIGHUP', () => void gate.reloadTls());
  const a = gate.addresses();
  const shown = Object.entries(a)
    .filter((e): e is [string, NonNullable<(typeof e)[1]>] => e[1] !== undefined) // disabled listeners
    .map(([k, v]) => `${k}=${v.address.includes(':') ? `[${v.address}]` : v.address}:${v.port}`);
  console.log(`mqgate gate listening: ${shown.join(' ')} serverId=${gate.serverId}`);
  onSignals(
    logger,
    async () => {
      await gate.drain();
      await app.stop();
    },
    () => void gate.stop(),
    [() => storage.close(), () => userIndex.close(), () => transport.close()],
  );
}

/** A real dynamic import (ESM or CommonJS files): TypeScript's CommonJS output would turn `import()` into require(). */
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

/**
 * Loads a module file: its default export (or `module.exports`) must be a defineModule(...) result.
 * @throws ConfigError naming the file when it cannot be loaded or exports something else.
 */
export async function loadModule(file: string): Promise<ModuleDefinition> {
  let mod: { default?: unknown };
  try {
    mod = (await importModule(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new ConfigError(`modules: cannot load ${file}: ${(err as Error).message}`);
  }
  let def = mod.default;
  // A CommonJS file compiled from `export default` nests it once more.
  if (def && typeof def === 'object' && 'default' in def && !('handlers' in def)) def = (def as { default: unknown }).default;
  if (
    !def ||
    typeof def !== 'object' ||
    typeof (def as ModuleDefinition).type !== 'string' ||
    typeof (def as ModuleDefinition).handlers !== 'object'
  ) {
    throw new ConfigError(`modules: ${file} must default-export defineModule({ type, handlers }), got ${typeof def}`);
  }
  return def as ModuleDefinition;
}

/** `mqgate modules`: serves the module files over the transport. Prints "mqgate modules ready: <types>". */
export async function runModules(c: Config): Promise<void> {
  const logger = pino({ level: c.get<string>('log.level') });
  const defs: ModuleDefinition[] = [];
  for (const f of c.get<string[]>('modules')) defs.push(await loadModule(resolve(c.dir, f)));
  const transport = transportOf(c, logger);
  const userIndex = new RedisUserIndex({ url: userIndexUrl(c), prefix: c.get<string>('transport.prefix') });
  const app = createApp({ transport, logger, userIndex });
  for (const d of defs) app.module(d);
  await app.start();
  console.log(`mqgate modules ready: ${defs.map((d) => d.type).join(', ')}`);
  onSignals(
    logger,
    () => app.stop(),
    () => undefined,
    [() => userIndex.close(), () => transport.close()],
  );
}
