import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { describeKind, envName, FIELDS, type Field } from './schema';

/** A config error: names the key, the value given and what is accepted. Exit code 2. */
export class ConfigError extends Error {}

/** The effective config: dotted key → value (defaults filled in), and the file's folder. */
export interface Config {
  values: Map<string, unknown>;
  /** Folder of the config file: relative paths (TLS files, modules) are resolved from it. */
  dir: string;
  get<T>(key: string): T;
  /** A path value resolved from the config file's folder. */
  path(key: string): string | undefined;
}

/** Largest config file read, bytes. */
export const MAX_CONFIG_BYTES = 1 << 20;

const BY_KEY = new Map(FIELDS.map((f) => [f.key, f]));

function flatten(obj: unknown, prefix: string, out: Map<string, unknown>): void {
  if (obj !== null && typeof obj === 'object' && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (BY_KEY.has(key)) out.set(key, v);
      else if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
      else throw new ConfigError(`unknown key ${key} (value ${JSON.stringify(v)}); accepted keys: ${FIELDS.map((f) => f.key).join(', ')}`);
    }
    return;
  }
  if (prefix === '' && obj == null) return; // an empty file
  throw new ConfigError(`config ${prefix || 'file'} must be a mapping, got ${JSON.stringify(obj)}`);
}

function check(f: Field, value: unknown, from: string): unknown {
  const bad = () => new ConfigError(`${f.key}${from}: got ${JSON.stringify(value)}; accepted: ${describeKind(f.kind)}`);
  const k = f.kind;
  switch (k.type) {
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < k.min || value > k.max) throw bad();
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw bad();
      return value;
    case 'string':
      if (typeof value !== 'string' || value === '' || value.length > (k.maxLength ?? 4096)) throw bad();
      return value;
    case 'enum':
      if (typeof value !== 'string' || !k.values.includes(value)) throw bad();
      return value;
    case 'strings': {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || list.length > k.maxItems || !list.every((s) => typeof s === 'string' && s !== '')) throw bad();
      return list;
    }
  }
}

/** An env value: kept as is for a string key; else a YAML scalar or list (`5000` → 5000, `true`, `[a, b]`). */
function envValue(f: Field, raw: string): unknown {
  if (f.kind.type === 'string' || f.kind.type === 'enum') return raw;
  try {
    return parseYaml(raw) ?? raw;
  } catch {
    return raw;
  }
}

/**
 * Reads a YAML or JSON config file, applies `MQGATE_<KEY>` environment overrides (see
 * {@link envName}), checks every value against {@link FIELDS} and fills in defaults.
 * @throws ConfigError naming the key, the value and what is accepted (unknown keys too).
 */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  const raw = new Map<string, unknown>();
  const dir = file ? dirname(resolve(file)) : process.cwd();
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(`config file ${file} is over ${MAX_CONFIG_BYTES} bytes`);
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid YAML/JSON: ${(err as Error).message}`);
    }
    flatten(doc, '', raw);
  }
  const values = new Map<string, unknown>();
  for (const f of FIELDS) {
    const fromEnv = env[envName(f.key)];
    if (fromEnv !== undefined && fromEnv !== '') values.set(f.key, check(f, envValue(f, fromEnv), ` (from ${envName(f.key)})`));
    else if (raw.has(f.key) && raw.get(f.key) !== null) values.set(f.key, check(f, raw.get(f.key), ''));
    else if (f.default !== undefined) values.set(f.key, Array.isArray(f.default) ? [...f.default] : f.default);
  }
  return {
    values,
    dir,
    get: <T>(key: string) => values.get(key) as T,
    path: (key) => {
      const v = values.get(key);
      return typeof v === 'string' ? resolve(dir, v) : undefined;
    },
  };
}

/**
 * A URL with its password replaced by `****`, or its user name when it has no password (a
 * token in the user part: `nats://TOKEN@host`); `****` for what is not a URL.
 */
function maskUrl(v: string): string {
  try {
    const u = new URL(v);
    if (u.password) u.password = '****';
    else if (u.username) u.username = '****';
    else return v;
    return u.toString();
  } catch {
    return '****';
  }
}

/** A secret value as printed: URLs (one or a list) with their passwords masked, anything else `****`. */
function maskSecret(key: string, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => String(v).split(',').map(maskUrl).join(','));
  return key.endsWith('url') ? maskUrl(String(value)) : '****';
}

/** The effective config as YAML, nested, secrets masked (`--print-config`). */
export function printConfig(c: Config): string {
  const root: Record<string, unknown> = {};
  for (const [key, value] of c.values) {
    const f = BY_KEY.get(key)!;
    const parts = key.split('.');
    let node = root;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]] = f.secret ? maskSecret(key, value) : value;
  }
  return stringify(root);
}

/** NATS URL schemes `transport.servers` accepts. */
const NATS_SCHEMES = ['nats:', 'tls:', 'ws:', 'wss:'];

/** `transport.servers` as a flat list of URLs (comma-separated strings split, as NATS_URL). */
export function natsServers(c: Config): string[] {
  return (c.get<string[] | undefined>('transport.servers') ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The Redis URL of the user index: `userIndex.url`, else `transport.url` (checked by {@link requireFor}). */
export function userIndexUrl(c: Config): string {
  return c.get<string | undefined>('userIndex.url') ?? c.get<string>('transport.url');
}

/** Checks the transport keys: a Redis URL for redis; NATS URLs and a Redis URL for the user index for nats. */
function requireTransport(c: Config): void {
  if (c.get<string>('transport.type') === 'redis') {
    if (!c.values.has('transport.url'))
      throw new ConfigError(`transport.url: missing; accepted: a Redis URL such as redis://127.0.0.1:6379 (or ${envName('transport.url')})`);
    return;
  }
  const servers = natsServers(c);
  if (servers.length === 0) {
    throw new ConfigError(
      `transport.servers: missing while transport.type is nats; accepted: NATS URL(s) such as nats://127.0.0.1:4222 (or ${envName('transport.servers')})`,
    );
  }
  for (const url of servers) {
    let scheme: string;
    try {
      scheme = new URL(url).protocol;
    } catch {
      scheme = '';
    }
    if (!NATS_SCHEMES.includes(scheme)) {
      throw new ConfigError(
        `transport.servers: got ${JSON.stringify(maskUrl(url))}; accepted: NATS URLs (${NATS_SCHEMES.map((s) => `${s}//`).join(', ')}) such as nats://127.0.0.1:4222`,
      );
    }
  }
  if (!c.values.has('userIndex.url') && !c.values.has('transport.url')) {
    throw new ConfigError(
      `userIndex.url: missing while transport.type is nats; accepted: a Redis URL such as redis://127.0.0.1:6379 (the user index and sessions stay on Redis; or ${envName('userIndex.url')})`,
    );
  }
}

/** Checks what one command needs beyond the kinds (required keys, TLS files for TLS listeners). */
export function requireFor(c: Config, command: 'gate' | 'modules'): void {
  requireTransport(c);
  if (command === 'modules') {
    if (!(c.get<string[]>('modules')?.length > 0))
      throw new ConfigError('modules: missing; accepted: a list of JS files default-exporting defineModule(...)');
    return;
  }
  const tls = c.get<boolean>('mqtts.enabled') || c.get<boolean>('wss.enabled');
  if (tls && (!c.values.has('tls.key') || !c.values.has('tls.cert'))) {
    throw new ConfigError(`tls.key / tls.cert: missing while mqtts.enabled or wss.enabled is true; accepted: PEM file paths`);
  }
}
