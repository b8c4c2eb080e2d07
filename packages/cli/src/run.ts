import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino, { type Logger } from 'pino';
import { createApp, stopOnSignals, type ModuleDefinition } from '@mqgate/client';
import { Gate, type GateOptions, type TlsListenOptions } from '@mqgate/gate';
import type { RpcTransport } from '@mqgate/rpc';
import { RedisTransport, RedisUserIndex } from '@mqgate/rpc/redis';
import { MemoryStorage, RedisStorage, type StorageHandler } from '@mqgate/storage';
import { ConfigError, natsServers, userIndexUrl, type Config } from './config';

type Closer = () => Promise<void> | void;

/** What the command says when `transport.type` is nats and `@mqgate/nats` is not installed. */
export const NATS_MISSING =
  'transport.type: nats: install @mqgate/nats to use transport nats (npm install @mqgate/nats; an optional peer of @mqgate/cli)';

/**
 * `@mqgate/nats`, loaded only for `transport.type: nats`: it is an optional peer of this
 * package (peerDependenciesMeta), so apps on Redis alone never install a NATS client.
 * @throws ConfigError {@link NATS_MISSING} when `@mqgate/nats` itself cannot be found; any
 *   other load error (a dependency of it missing, a syntax error) as it is
 */
async function natsPackage(): Promise<typeof import('@mqgate/nats')> {
  try {
    return await import('@mqgate/nats');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Node's message starts "Cannot find module '<request>'": only the request for @mqgate/nats
    // itself means it is not installed (not a missing module required from inside it).
    if (e.code !== 'MODULE_NOT_FOUND' || !String(e.message).startsWith("Cannot find module '@mqgate/nats'")) throw err;
    throw new ConfigError(NATS_MISSING);
  }
}

/**
 * The transport of `transport.type`: a RedisTransport on `transport.url`, or a NatsTransport
 * on `transport.servers` (subjects prefixed with `transport.prefix` less a trailing `:`).
 */
async function transportOf(c: Config, logger: Logger): Promise<RpcTransport> {
  const ttl = c.get<number>('transport.registryTtl');
  if (c.get<string>('transport.type') === 'nats') {
    const { NatsTransport } = await natsPackage();
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

/** `connectRate` and `flapping` from their `gate.<option>.<field>` keys: `false` when the first field is 0. */
function nestedLimits(c: Config): Pick<GateOptions, 'connectRate' | 'flapping'> {
  const perSecond = c.get<number>('gate.connectRate.perSecond');
  const maxCount = c.get<number>('gate.flapping.maxCount');
  return {
    connectRate: perSecond === 0 ? false : { perSecond, burst: c.get<number>('gate.connectRate.burst') },
    flapping: maxCount === 0 ? false : { maxCount, window: c.get<number>('gate.flapping.window'), banTime: c.get<number>('gate.flapping.banTime') },
  };
}

/**
 * The gate's per-address admission limits of a config (`gate.maxConnections`,
 * `gate.maxConnectionsPerIp`, `gate.connectRate.*`, `gate.flapping.*`, `gate.maxTrackedIps`,
 * `gate.maxTrackedClientIds`, `gate.maxBans`): what the demo takes from the same variables.
 */
export const ADMISSION_KEYS: readonly string[] = [
  'gate.maxConnections',
  'gate.maxConnectionsPerIp',
  'gate.connectRate.perSecond',
  'gate.connectRate.burst',
  'gate.flapping.maxCount',
  'gate.flapping.window',
  'gate.flapping.banTime',
  'gate.maxTrackedIps',
  'gate.maxTrackedClientIds',
  'gate.maxBans',
];

/** The {@link ADMISSION_KEYS} options of a config, as GateOptions. */
export function admissionOptions(
  c: Config,
): Pick<GateOptions, 'maxConnections' | 'maxConnectionsPerIp' | 'connectRate' | 'flapping' | 'maxTrackedIps' | 'maxTrackedClientIds' | 'maxBans'> {
  const o = gateOptions(c);
  return {
    maxConnections: o.maxConnections,
    maxConnectionsPerIp: o.maxConnectionsPerIp,
    connectRate: o.connectRate,
    flapping: o.flapping,
    maxTrackedIps: o.maxTrackedIps,
    maxTrackedClientIds: o.maxTrackedClientIds,
    maxBans: o.maxBans,
  };
}

/** GateOptions from a config (the `gate.*` keys as they are, `gate.<option>.<field>` keys nested, the sections mapped). */
export function gateOptions(c: Config): GateOptions {
  const opts: Record<string, unknown> = {};
  for (const [key, value] of c.values) if (key.startsWith('gate.') && !key.includes('.', 5)) opts[key.slice(5)] = value;
  const listen = (which: 'tcp' | 'websocket') =>
    c.get<boolean>(`${which}.enabled`) ? { port: c.get<number>(`${which}.port`), host: c.get<string | undefined>(`${which}.host`) } : false;
  const tcp = listen('tcp');
  return {
    ...(opts as GateOptions),
    ...nestedLimits(c),
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
  const storage = await storageOf(c, logger);
  const transport = await transportOf(c, logger);
  const url = userIndexUrl(c);
  const prefix = c.get<string>('transport.prefix');
  const userIndex = new RedisUserIndex({ url, prefix });
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
    [() => storage.close?.(), () => userIndex.close(), () => transport.close()],
  );
}

/** What a `storage.module` factory is given. */
export interface StorageFactoryOptions {
  /** `storage.ttl`: ms a stored session lives. */
  ttl: number;
  /** The command's pino logger. */
  logger: Logger;
}

/** The default export of a `storage.module` file. */
export type StorageFactory = (options: StorageFactoryOptions) => StorageHandler | Promise<StorageHandler>;

/** A StorageHandler the command may close on stop. */
type ClosableStorage = StorageHandler & { close?(): Promise<void> | void };

/** The gate's StorageHandler: `storage.module`'s factory when set, else `storage.type`'s. */
async function storageOf(c: Config, logger: Logger): Promise<ClosableStorage> {
  const ttl = c.get<number>('storage.ttl');
  const file = c.path('storage.module');
  if (file) return loadStorage(file, { ttl, logger });
  if (c.get<string>('storage.type') === 'memory') return new MemoryStorage({ ttl });
  const url = c.get<string | undefined>('storage.url') ?? userIndexUrl(c);
  return new RedisStorage({ url, ttl, prefix: `${c.get<string>('transport.prefix')}session:` });
}

/**
 * Loads a `storage.module` file and calls its factory: the default export (or
 * `module.exports`) must be a function returning a StorageHandler (query, storage, delete,
 * heartbeat) or a promise of one; its `close()`, if any, runs when the command stops.
 * @throws ConfigError naming the file when it cannot be loaded, exports no function, or the result lacks a method
 */
export async function loadStorage(file: string, options: StorageFactoryOptions): Promise<ClosableStorage> {
  const factory = unwrapDefault(await importFile(file, 'storage.module'));
  if (typeof factory !== 'function')
    throw new ConfigError(`storage.module: ${file} must default-export a function ({ ttl, logger }) => StorageHandler, got ${typeof factory}`);
  const handler = (await (factory as StorageFactory)(options)) as Partial<ClosableStorage> | null;
  const missing = (['query', 'storage', 'delete', 'heartbeat'] as const).filter((m) => typeof handler?.[m] !== 'function');
  if (missing.length > 0) throw new ConfigError(`storage.module: the factory of ${file} returned no StorageHandler (missing ${missing.join(', ')})`);
  return handler as ClosableStorage;
}

/**
 * A file's namespace by a real dynamic import (ESM or CommonJS).
 * @throws ConfigError `<key>: cannot load <file>: <cause>`
 */
async function importFile(file: string, key: string): Promise<{ default?: unknown }> {
  try {
    return (await importModule(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new ConfigError(`${key}: cannot load ${file}: ${(err as Error).message}`);
  }
}

/** A namespace's default export; a CommonJS file compiled from `export default` nests it once more (`{ default: { default } }`). */
function unwrapDefault(mod: { default?: unknown }): unknown {
  const def = mod.default;
  if (def && typeof def === 'object' && 'default' in def && !('handlers' in def)) return (def as { default: unknown }).default;
  return def;
}

/** A real dynamic import (ESM or CommonJS files): TypeScript's CommonJS output would turn `import()` into require(). */
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

/**
 * Loads a module file: its default export (or `module.exports`) must be a defineModule(...) result.
 * @throws ConfigError naming the file when it cannot be loaded or exports something else.
 */
export async function loadModule(file: string): Promise<ModuleDefinition> {
  const def = unwrapDefault(await importFile(file, 'modules'));
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
  const transport = await transportOf(c, logger);
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
