import { ADMISSION_KEYS, admissionOptions, envName, loadConfig, ConfigError as CommandConfigError, type Config } from '@mqgate/cli';

/**
 * The demo's configuration, from the environment, in one place. The same build runs as one
 * process (default) or split into gate processes and module processes joined by Redis or NATS.
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | `MQGATE_ROLE` | `all` | `all`: gate and modules; `gate`: only the gate; `modules`: only the modules |
 * | `MQGATE_TRANSPORT_TYPE` | `inprocess` (`redis` when the role is not `all`) | `inprocess`, `redis` or `nats` |
 * | `REDIS_URL` | unset | Redis for the transport (`redis`), the user index and session storage; unset: both in memory (needed by a split role) |
 * | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s) for `MQGATE_TRANSPORT_TYPE=nats`, comma-separated for a cluster |
 * | `MQGATE_TRANSPORT_PREFIX` | `mqgate:` | prefix of every Redis key and channel the demo uses |
 * | `MQGATE_TCP_PORT` / `MQGATE_WEBSOCKET_PORT` / `MQGATE_HOST` | 3563 / 3653 / all | gate listeners |
 * | `MQGATE_SERVER_ID` | `gate@<random>` | the gate's node id |
 * | `MQGATE_STORAGE_TTL` | 86 400 000 | stored session lifetime, ms |
 * | `MQGATE_GATE_HEARTBEAT_INTERVAL` | 60 000 | StorageHandler heartbeat interval, ms |
 * | `MQGATE_DUPLICATE_LOGIN_POLICY` | `allow` | `allow`, `kick-old` or `reject-new` |
 * | `MQGATE_DUPLICATE_LOGIN_MAX_SESSIONS_PER_USER` | unset | cap of sessions per user |
 * | `MQGATE_TRANSPORT_TIMEOUT` | 10 000 | one deadline for every call and handler, ms |
 * | `MQGATE_TRANSPORT_REGISTRY_TTL` | 20 000 (Redis), 3 000 (NATS) | registry TTL of a server, ms (Redis: refreshed at half of it; NATS: a heartbeat every third) |
 * | `MQGATE_LOG_LEVEL` | `info` | pino level |
 * | `MQGATE_JWT_SECRET` | unset | HS256 secret (≥ 32 bytes): CONNECT needs a JWT as its password and `user/HD_login` is refused; unset: the login trusts any userId a client sends |
 * | `MQGATE_GATE_RESUME_WINDOW` | 120 000 | the gate's resumeWindow: ms a dropped session can be resumed (`gate/HD_resume`); 0 = off |
 * | `MQGATE_METRICS_PORT` | 9563 | the gate's ops server (`/metrics`, `/healthz`, `/readyz`); `0`: a port the OS picks; `off`: none |
 * | `MQGATE_METRICS_HOST` | all | its interface |
 * | `MQGATE_HTTP_PORT` | 3080 | the demo page over HTTP (a gate role only; on `MQGATE_HOST`); `0`: a port the OS picks; `off`: none. When the default port is taken the demo warns and runs without the page |
 * | `MQGATE_GATE_MAX_CONNECTIONS`, `MQGATE_GATE_MAX_CONNECTIONS_PER_IP`, `MQGATE_GATE_CONNECT_RATE_*`, `MQGATE_GATE_FLAPPING_*`, `MQGATE_GATE_MAX_TRACKED_IPS`, `MQGATE_GATE_MAX_TRACKED_CLIENT_IDS`, `MQGATE_GATE_MAX_BANS` | the gate's | the per-address admission limits |
 *
 * Every name the `mqgate` command also has is the command's name, read and checked as the
 * command reads it (`FIELDS` of `@mqgate/cli`; docs/reference/config-file.md), so one
 * environment drives both. The demo's older names ({@link RENAMED_VARIABLES}: `MQGATE_TRANSPORT`,
 * `MQGATE_RPC_TIMEOUT_MS`, `MQGATE_WS_PORT`...) are still read when the new name is unset, with a
 * warning naming the new one.
 * Any other `MQGATE_*` variable gets a warning at start ({@link DEMO_VARIABLES}).
 */
export interface DemoConfig {
  role: 'all' | 'gate' | 'modules';
  transport: 'inprocess' | 'redis' | 'nats';
  redisUrl: string | undefined;
  natsUrl: string;
  prefix: string;
  host: string | undefined;
  tcpPort: number;
  wsPort: number;
  serverId: string | undefined;
  sessionTtl: number;
  heartbeatInterval: number;
  duplicateLogin: 'allow' | 'kick-old' | 'reject-new';
  maxSessionsPerUser: number | undefined;
  rpcTimeout: number;
  registryTtl: number;
  logLevel: string;
  /** HS256 secret of the gate's `jwt` option; undefined: no JWT, `user/HD_login` binds any userId. */
  jwtSecret: string | undefined;
  resumeWindow: number;
  /** The gate's `metricsPort`: a port (0: the OS picks one) or false (`MQGATE_METRICS_PORT=off`). */
  metricsPort: number | false;
  metricsHost: string | undefined;
  /** The demo page's HTTP port (0: the OS picks one), or false (`MQGATE_HTTP_PORT=off`). */
  httpPort: number | false;
  /** True when MQGATE_HTTP_PORT was set (a taken port is then an error, not a warning). */
  httpPortSet: boolean;
  /** The per-address admission limits, from the `mqgate` command's variables for them. */
  admission: ReturnType<typeof admissionOptions>;
}

/** The environment names of the admission limits: the `mqgate` command's (`MQGATE_GATE_MAX_CONNECTIONS_PER_IP`...). */
export const ADMISSION_VARIABLES: readonly string[] = ADMISSION_KEYS.map(envName);

/** The `mqgate` command's config keys the demo reads besides the admission limits, read and checked as the command reads them. */
const SHARED_KEYS = [
  'transport.prefix',
  'transport.timeout',
  'transport.registryTtl',
  'storage.ttl',
  'gate.heartbeatInterval',
  'gate.resumeWindow',
  'duplicateLogin.policy',
  'duplicateLogin.maxSessionsPerUser',
  'log.level',
] as const;

/** Demo variables that were renamed to the `mqgate` command's names: old name → new name. The old one is still read when the new one is unset. */
export const RENAMED_VARIABLES: Readonly<Record<string, string>> = {
  MQGATE_WS_PORT: 'MQGATE_WEBSOCKET_PORT',
  MQGATE_TRANSPORT: 'MQGATE_TRANSPORT_TYPE',
  MQGATE_REDIS_PREFIX: 'MQGATE_TRANSPORT_PREFIX',
  MQGATE_RPC_TIMEOUT_MS: 'MQGATE_TRANSPORT_TIMEOUT',
  MQGATE_REGISTRY_TTL_MS: 'MQGATE_TRANSPORT_REGISTRY_TTL',
  MQGATE_SESSION_TTL_MS: 'MQGATE_STORAGE_TTL',
  MQGATE_HEARTBEAT_MS: 'MQGATE_GATE_HEARTBEAT_INTERVAL',
  MQGATE_RESUME_WINDOW_MS: 'MQGATE_GATE_RESUME_WINDOW',
  MQGATE_DUPLICATE_LOGIN: 'MQGATE_DUPLICATE_LOGIN_POLICY',
  MQGATE_MAX_SESSIONS_PER_USER: 'MQGATE_DUPLICATE_LOGIN_MAX_SESSIONS_PER_USER',
  LOG_LEVEL: 'MQGATE_LOG_LEVEL',
};

/** Every `MQGATE_*` variable the demo reads (the renamed ones aside); any other gets a warning at start. */
export const DEMO_VARIABLES: readonly string[] = [
  'MQGATE_ROLE',
  'MQGATE_TRANSPORT_TYPE',
  'MQGATE_HOST',
  'MQGATE_TCP_PORT',
  'MQGATE_WEBSOCKET_PORT',
  'MQGATE_SERVER_ID',
  'MQGATE_JWT_SECRET',
  'MQGATE_METRICS_PORT',
  'MQGATE_METRICS_HOST',
  'MQGATE_HTTP_PORT',
  ...SHARED_KEYS.map(envName),
  ...ADMISSION_VARIABLES,
];

/**
 * The environment with every renamed variable read under its new name when the new one is
 * unset, and one warning line per old name that was set (`X is deprecated, read as Y` or, when Y is
 * set too, `X is ignored: Y is set`).
 */
export function renameVariables(env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; warnings: string[] } {
  const out: NodeJS.ProcessEnv = { ...env };
  const warnings: string[] = [];
  for (const [old, now] of Object.entries(RENAMED_VARIABLES)) {
    if (env[old] === undefined) continue;
    if (env[now] !== undefined) warnings.push(`${old} is ignored: ${now} is set`);
    else {
      out[now] = env[old];
      warnings.push(`${old} is deprecated, read as ${now} (the mqgate command's name)`);
    }
  }
  return { env: out, warnings };
}

/** The command's keys the demo shares (admission limits included), read and checked as the `mqgate` command reads them. */
function commandConfig(env: NodeJS.ProcessEnv): Config {
  const names = [...ADMISSION_VARIABLES, ...SHARED_KEYS.map(envName)];
  const only = Object.fromEntries(names.filter((n) => env[n] !== undefined).map((n) => [n, env[n]]));
  try {
    return loadConfig(undefined, only);
  } catch (err) {
    if (err instanceof CommandConfigError) throw new ConfigError(err.message);
    throw err;
  }
}

/** A configuration error: the message names the variable and the accepted values. */
export class ConfigError extends Error {}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, values: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(values as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

/** The demo's ops server port, the same as the `mqgate` command's (`metrics.port`). */
export const DEFAULT_METRICS_PORT = 9563;

function metricsPort(env: NodeJS.ProcessEnv): number | false {
  return portOrOff(env, 'MQGATE_METRICS_PORT', DEFAULT_METRICS_PORT);
}

/** The demo page's default HTTP port. */
export const DEFAULT_HTTP_PORT = 3080;

/** A port variable that also takes `off`: the port, or false. */
function portOrOff(env: NodeJS.ProcessEnv, name: string, fallback: number): number | false {
  const raw = env[name];
  if (raw === 'off') return false;
  try {
    return int(env, name, fallback, 0, 65535);
  } catch {
    throw new ConfigError(`${name} must be a port from 0 to 65535 or off, got ${JSON.stringify(raw)}`);
  }
}

/** Shortest MQGATE_JWT_SECRET, bytes (RFC 7518 §3.2: an HS256 key at least as long as its hash). */
export const MIN_JWT_SECRET_BYTES = 32;

function jwtSecret(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env.MQGATE_JWT_SECRET;
  if (raw === undefined || raw === '') return undefined;
  if (Buffer.byteLength(raw, 'utf8') < MIN_JWT_SECRET_BYTES)
    throw new ConfigError(`MQGATE_JWT_SECRET must be at least ${MIN_JWT_SECRET_BYTES} bytes`);
  return raw;
}

/**
 * The demo's configuration from the environment (the renamed variables read as their new names, see {@link renameVariables}).
 * @throws ConfigError for a bad value, a short MQGATE_JWT_SECRET, or a split role (or the redis transport) without REDIS_URL.
 */
export function readConfig(given: NodeJS.ProcessEnv = process.env): DemoConfig {
  const { env } = renameVariables(given);
  const role = oneOf(env, 'MQGATE_ROLE', ['all', 'gate', 'modules'] as const, 'all');
  const transport = oneOf(env, 'MQGATE_TRANSPORT_TYPE', ['inprocess', 'redis', 'nats'] as const, role === 'all' ? 'inprocess' : 'redis');
  const redisUrl = env.REDIS_URL || undefined;
  if (role !== 'all' && transport === 'inprocess') throw new ConfigError(`MQGATE_ROLE=${role} needs MQGATE_TRANSPORT_TYPE=redis or nats`);
  if (transport === 'redis' && !redisUrl) throw new ConfigError('MQGATE_TRANSPORT_TYPE=redis needs REDIS_URL, e.g. redis://127.0.0.1:6379');
  if (role !== 'all' && !redisUrl)
    throw new ConfigError(`MQGATE_ROLE=${role} needs REDIS_URL (the user index and sessions are shared in Redis), e.g. redis://127.0.0.1:6379`);
  const c = commandConfig(env);
  const registryTtlSet = env.MQGATE_TRANSPORT_REGISTRY_TTL !== undefined && env.MQGATE_TRANSPORT_REGISTRY_TTL !== '';
  return {
    role,
    transport,
    redisUrl,
    natsUrl: env.NATS_URL || 'nats://127.0.0.1:4222',
    prefix: c.get<string>('transport.prefix'),
    host: env.MQGATE_HOST || undefined,
    tcpPort: int(env, 'MQGATE_TCP_PORT', 3563, 0, 65535),
    wsPort: int(env, 'MQGATE_WEBSOCKET_PORT', 3653, 0, 65535),
    serverId: env.MQGATE_SERVER_ID || undefined,
    sessionTtl: c.get<number>('storage.ttl'),
    heartbeatInterval: c.get<number>('gate.heartbeatInterval'),
    duplicateLogin: c.get<DemoConfig['duplicateLogin']>('duplicateLogin.policy'),
    maxSessionsPerUser: c.get<number | undefined>('duplicateLogin.maxSessionsPerUser'),
    rpcTimeout: c.get<number>('transport.timeout'),
    registryTtl: registryTtlSet ? c.get<number>('transport.registryTtl') : transport === 'nats' ? 3_000 : 20_000,
    logLevel: c.get<string>('log.level'),
    jwtSecret: jwtSecret(env),
    resumeWindow: c.get<number>('gate.resumeWindow'),
    metricsPort: metricsPort(env),
    metricsHost: env.MQGATE_METRICS_HOST || undefined,
    httpPort: portOrOff(env, 'MQGATE_HTTP_PORT', DEFAULT_HTTP_PORT),
    httpPortSet: env.MQGATE_HTTP_PORT !== undefined && env.MQGATE_HTTP_PORT !== '',
    admission: admissionOptions(c),
  };
}
