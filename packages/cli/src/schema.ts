import { DEFAULTS } from '@mqgate/gate';
import { type OptionRange } from '@mqgate/rpc';
import { MAX_TIMER_MS, RANGES } from '@mqgate/rpc/internal';

/** What a config value may be. */
export type Kind =
  | { type: 'int'; min: number; max: number }
  | { type: 'bool' }
  | { type: 'string'; maxLength?: number }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'strings'; maxItems: number };

/** One key of the config file, e.g. `gate.maxConnections`. */
export interface Field {
  key: string;
  kind: Kind;
  /** Default when absent (undefined: unset). */
  default?: unknown;
  doc: string;
  /** Masked by --print-config. */
  secret?: boolean;
}

/** A config integer in a range of the options kit (the gate checks the same); unbounded ones stop at 2^31 - 1. */
function int(r: OptionRange, max = r.max ?? MAX_TIMER_MS): Kind {
  return { type: 'int', min: r.exclusiveMin ? Math.floor(r.min) + 1 : Math.ceil(r.min), max };
}
const MS = int(RANGES.positive);
const POSITIVE = int(RANGES.positive);
const COUNT = int(RANGES.count);
const TIMER = int(RANGES.timerMs);
const PORT = int(RANGES.port);
const BOOL = { type: 'bool' } as const;
const STR = { type: 'string', maxLength: 4096 } as const;
const LIST = { type: 'strings', maxItems: 1000 } as const;

/** Gate options taken as they are from the config's `gate:` section (name, kind, doc); defaults are the gate's own DEFAULTS. */
const GATE_KEYS: [keyof typeof DEFAULTS, Kind, string][] = [
  ['connectTimeout', MS, 'ms a new connection has to send CONNECT'],
  ['maxIdle', MS, 'ms of silence after which a keepalive-0 client is closed'],
  ['maxKeepalive', int(RANGES.uint16), 'largest keepalive a CONNECT may ask for, s (0: any)'],
  ['maxPacketSize', int(RANGES.packetSize), 'largest packet accepted, bytes'],
  ['maxBufferedBytes', POSITIVE, 'unsent bytes per connection before it is closed as a slow consumer'],
  ['maxConnections', COUNT, 'open connections cap (0: none; unset: "auto", from the open-files limit)'],
  ['maxConnectionsPerIp', COUNT, 'open connections per client address cap (0: none)'],
  ['maxInflight', int(RANGES.positiveInteger, 10_000), 'requests running at once per connection'],
  ['ordered', BOOL, 'one request at a time per session, in order'],
  ['handlerTimeout', MS, 'ms a module handler has before the client gets a deadline error'],
  ['maxQos2Pending', int(RANGES.packetIdentifier), 'QoS 2 ids held per connection'],
  ['trustedProxies', LIST, 'peers whose X-Forwarded-For / PROXY header is believed (exact IPs)'],
  ['heartbeatInterval', MS, 'ms between storage heartbeats of a bound session'],
  ['deleteOnUnbind', BOOL, 'delete stored sessions on every unbind'],
  ['storageRetryDelay', MS, 'ms before the first retry of a failed store write'],
  ['storageRetryMaxDelay', MS, 'ms, longest wait between store write retries'],
  ['metricsHandlerCap', int(RANGES.positiveInteger, 1000), 'handler names per module in metrics labels, then "other"'],
  ['drainPeriod', TIMER, 'ms over which a drain (SIGTERM) closes the clients, in batches'],
  ['stopTimeout', MS, 'ms a stop waits for requests in flight, then for pending store writes'],
  ['outputHighWaterMark', POSITIVE, 'unsent bytes per connection above which the gate stops reading it'],
  ['slowConsumerTimeout', MS, 'ms a connection may stay above outputHighWaterMark before it is closed'],
  ['maxUserIdBytes', COUNT, 'longest userId, UTF-8 bytes (0: no limit)'],
  ['maxSettings', COUNT, 'settings per session (0: no limit)'],
  ['maxSettingKeyBytes', COUNT, 'longest settings key, UTF-8 bytes (0: no limit)'],
  ['maxSettingValueBytes', COUNT, 'longest settings value, UTF-8 bytes (0: no limit)'],
  ['maxSettingsBytes', COUNT, 'all settings of a session, UTF-8 bytes (0: no limit)'],
  ['resumeWindow', TIMER, 'ms a dropped bound session is kept detached for resume (0: resume off)'],
  ['resumeBufferMessages', COUNT, 'missed pushes kept per detached session'],
  ['resumeBufferBytes', COUNT, 'bytes of missed pushes kept per detached session'],
  ['maxDetached', COUNT, 'detached sessions one gate holds; the oldest dropped past it (0: no cap)'],
  ['maxOutboundInflight', int(RANGES.packetIdentifier), 'QoS 1 pushes unacknowledged at once per connection'],
  ['maxOutboundQueue', COUNT, 'QoS 1 pushes queued behind that window per connection'],
  ['userIndexCheckInterval', TIMER, 'ms between looks at the user index epoch (re-assert after an empty Redis restart; 0: off)'],
  ['maxTrackedIps', POSITIVE, 'client addresses the per-address limits track'],
  ['maxTrackedClientIds', POSITIVE, 'client ids the flapping detection tracks'],
  ['maxBans', POSITIVE, 'operator bans held (gate.ban, the shared list)'],
  ['maxFlappingBans', int(RANGES.positiveInteger), 'flapping bans held; the oldest evicted past it'],
  ['banSyncInterval', MS, 'ms between reads of the shared ban list'],
];

const RATE = DEFAULTS.connectRate as { perSecond: number; burst: number };
const FLAPPING = DEFAULTS.flapping as { maxCount: number; window: number; banTime: number };

/**
 * The gate's object-valued per-address limits, one key per field (`gate.connectRate.perSecond`
 * is `connectRate: { perSecond }`); a first field of 0 turns the limit off (`false`).
 */
const GATE_NESTED_KEYS: Field[] = [
  { key: 'gate.connectRate.perSecond', kind: COUNT, default: RATE.perSecond, doc: 'new connections per second per client address (0: off)' },
  { key: 'gate.connectRate.burst', kind: { type: 'int', min: 1, max: 2 ** 31 - 1 }, default: RATE.burst, doc: 'burst of that token bucket' },
  {
    key: 'gate.flapping.maxCount',
    kind: COUNT,
    default: FLAPPING.maxCount,
    doc: 'accepted CONNECTs of one client id within gate.flapping.window before it is banned (0: off)',
  },
  { key: 'gate.flapping.window', kind: MS, default: FLAPPING.window, doc: 'ms over which CONNECTs of a client id are counted' },
  { key: 'gate.flapping.banTime', kind: MS, default: FLAPPING.banTime, doc: 'ms a flapping client id stays banned' },
];

/** Every key of a `mqgate gate` / `mqgate modules` config file, with kind, default and meaning. */
export const FIELDS: Field[] = [
  {
    key: 'transport.type',
    kind: { type: 'enum', values: ['redis', 'nats'] },
    default: 'redis',
    doc: 'how the gate and the modules talk: over Redis, or over NATS (the user index and sessions stay on Redis)',
  },
  { key: 'transport.url', kind: STR, doc: 'Redis URL (required with transport.type redis), e.g. redis://127.0.0.1:6379', secret: true },
  {
    key: 'transport.servers',
    kind: LIST,
    doc: 'NATS server URL(s) (required with transport.type nats), e.g. nats://127.0.0.1:4222; a list or one comma-separated string (as NATS_URL), several for a cluster',
    secret: true,
  },
  {
    key: 'transport.prefix',
    kind: STR,
    default: 'mqgate:',
    doc: 'prefix of every Redis key and channel (NATS subjects: the same without a trailing `:`)',
  },
  { key: 'transport.timeout', kind: MS, default: 10_000, doc: 'ms, default deadline of every call' },
  {
    key: 'transport.registryTtl',
    kind: { type: 'int', min: 100, max: 2 ** 31 - 1 },
    default: 20_000,
    doc: 'ms a server stays registered without a refresh',
  },
  { key: 'serverId', kind: STR, doc: 'node id of the gate (default gate@<random>)' },
  { key: 'tcp.enabled', kind: BOOL, default: true, doc: 'MQTT over TCP listener' },
  { key: 'tcp.port', kind: PORT, default: 3563, doc: 'its port' },
  { key: 'tcp.host', kind: STR, doc: 'its interface (default: all)' },
  { key: 'tcp.proxyProtocol', kind: BOOL, default: false, doc: 'expect PROXY protocol v1/v2 headers from trustedProxies' },
  { key: 'websocket.enabled', kind: BOOL, default: true, doc: 'MQTT over WebSocket listener' },
  { key: 'websocket.port', kind: PORT, default: 3653, doc: 'its port' },
  { key: 'websocket.host', kind: STR, doc: 'its interface (default: all)' },
  { key: 'mqtts.enabled', kind: BOOL, default: false, doc: 'MQTT over TLS listener (needs tls.key and tls.cert)' },
  { key: 'mqtts.port', kind: PORT, default: 8883, doc: 'its port' },
  { key: 'mqtts.host', kind: STR, doc: 'its interface (default: all)' },
  { key: 'mqtts.proxyProtocol', kind: BOOL, default: false, doc: 'expect PROXY protocol v1/v2 headers before TLS from trustedProxies' },
  { key: 'wss.enabled', kind: BOOL, default: false, doc: 'MQTT over secure WebSocket listener (needs tls.key and tls.cert)' },
  { key: 'wss.port', kind: PORT, default: 8084, doc: 'its port' },
  { key: 'wss.host', kind: STR, doc: 'its interface (default: all)' },
  { key: 'tls.key', kind: STR, doc: 'PEM file of the private key (relative to the config file)' },
  { key: 'tls.cert', kind: STR, doc: 'PEM file of the certificate chain' },
  { key: 'tls.ca', kind: LIST, doc: 'PEM files of the CAs client certificates must chain to' },
  { key: 'tls.passphrase', kind: STR, doc: 'passphrase of an encrypted key', secret: true },
  { key: 'tls.requestCert', kind: BOOL, default: false, doc: 'ask clients for a certificate (its subject reaches authentication)' },
  { key: 'tls.watch', kind: BOOL, default: true, doc: 'reload the PEM files when they change (SIGHUP always reloads)' },
  { key: 'metrics.enabled', kind: BOOL, default: true, doc: '/metrics, /healthz, /readyz server' },
  { key: 'metrics.port', kind: PORT, default: 9563, doc: 'its port' },
  { key: 'metrics.host', kind: STR, doc: 'its interface (default: all)' },
  { key: 'storage.type', kind: { type: 'enum', values: ['memory', 'redis'] }, default: 'redis', doc: 'where sessions of bound users are kept' },
  { key: 'userIndex.url', kind: STR, doc: 'Redis URL of the user index (default: transport.url; required with transport.type nats)', secret: true },
  { key: 'storage.url', kind: STR, doc: 'Redis URL of the storage (default: userIndex.url)', secret: true },
  { key: 'storage.ttl', kind: MS, default: 86_400_000, doc: 'ms a stored session lives' },
  {
    key: 'storage.module',
    kind: STR,
    doc: 'a JS file (relative to the config file) default-exporting a factory `({ ttl, logger }) => StorageHandler` (or a promise of one); when set it replaces storage.type',
  },
  {
    key: 'duplicateLogin.policy',
    kind: { type: 'enum', values: ['allow', 'kick-old', 'reject-new'] },
    default: 'allow',
    doc: 'what a second login of a user does',
  },
  { key: 'duplicateLogin.maxSessionsPerUser', kind: { type: 'int', min: 1, max: 1_000_000 }, doc: 'cap of sessions per user' },
  ...GATE_KEYS.map(([name, kind, doc]): Field => ({ key: `gate.${name}`, kind, default: DEFAULTS[name], doc })),
  ...GATE_NESTED_KEYS,
  { key: 'modules', kind: LIST, doc: '`mqgate modules`: JS files default-exporting defineModule(...), relative to the config file' },
  {
    key: 'log.level',
    kind: { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    default: 'info',
    doc: 'pino level',
  },
];

/** `gate.maxConnections` → `MQGATE_GATE_MAX_CONNECTIONS`. */
export function envName(key: string): string {
  return `MQGATE_${key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/\./g, '_')
    .toUpperCase()}`;
}

/** What a kind accepts, for error messages and docs/reference/config-file.md. */
export function describeKind(k: Kind): string {
  switch (k.type) {
    case 'int':
      return `an integer from ${k.min} to ${k.max}`;
    case 'bool':
      return 'true or false';
    case 'string':
      return 'a string';
    case 'enum':
      return `one of ${k.values.join(', ')}`;
    case 'strings':
      return `a list of strings (at most ${k.maxItems})`;
  }
}
