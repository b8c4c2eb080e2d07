/**
 * The Redis key schema of mqgate, as code: every key and channel name the transport, the
 * registry, the user index and the session storage use is built here, and nowhere else.
 * docs/reference/redis-keys.md's table is checked against {@link KEY_SCHEMA} by a test.
 *
 * Braces are Cluster hash tags: keys a command (or Lua script) uses together share a slot.
 * Channel names get no ioredis `keyPrefix` (Pub/Sub is not keyed), keys do.
 */

/** Default prefix of every key and channel: `'mqgate:'`. */
export const DEFAULT_KEY_PREFIX = 'mqgate:';
/** The RedisTransport's default `prefix`: {@link DEFAULT_KEY_PREFIX}. */
export const DEFAULT_RPC_PREFIX = DEFAULT_KEY_PREFIX;

/**
 * The request lists of a module type (lists of protobuf requests): `type`, shared by all its
 * servers, `<prefix>rpc:{<moduleType>}:type`; `server`, one server's own,
 * `<prefix>rpc:{<moduleType>}:server:<serverId>`. The `{moduleType}` hash tag keeps them in
 * one Cluster slot (one BLMPOP reads both).
 */
export function rpcListKeys(prefix: string, moduleType: string, serverId: string): { type: string; server: string } {
  const base = `${prefix}rpc:{${moduleType}}:`;
  return { type: `${base}type`, server: `${base}server:${serverId}` };
}

/** Pub/Sub channel the replies to one transport's calls arrive on: `<prefix>rpc:reply:<transportId>`. */
export function replyChannel(prefix: string, transportId: string): string {
  return `${prefix}rpc:reply:${transportId}`;
}

/** The registry's keys and channel (see registry.ts for what they hold). */
export interface RegistryKeys {
  /** ZSET serverId → expiry (Redis time, epoch ms): `<prefix>{registry}:servers`. */
  servers: string;
  /** HASH serverId → JSON ServerInfo: `<prefix>{registry}:info`. */
  info: string;
  /** Pub/Sub channel of join / leave events: `<prefix>registry:events`. */
  events: string;
  /** Pub/Sub channel of heartbeats (JSON array of the serverIds of one transport): `<prefix>registry:heartbeat`. */
  heartbeat: string;
}

/** The registry's Redis keys for a prefix; the `{registry}` hash tag keeps both keys in one slot. */
export function registryKeys(prefix: string): RegistryKeys {
  return {
    servers: `${prefix}{registry}:servers`,
    info: `${prefix}{registry}:info`,
    events: `${prefix}registry:events`,
    heartbeat: `${prefix}registry:heartbeat`,
  };
}

/** A user's hash in the user index (`serverId|sessionId` → bind time, ms): `<prefix>user:{<userId>}`. */
export function userKey(prefix: string, userId: string): string {
  return `${prefix}user:{${userId}}`;
}

/** The shared ban list: sorted set `<kind>:<value>` → until (epoch ms), `<prefix>{bans}`. */
export function bansKey(prefix: string): string {
  return `${prefix}{bans}`;
}

/**
 * The user index's epoch (a random id): `<prefix>user-index:epoch`. Made by the first gate
 * that finds it missing; it changing (an empty Redis restart, a FLUSHALL) tells the gates
 * the index lost its entries and that they must re-assert theirs (RedisUserIndex.epoch).
 */
export function userIndexEpochKey(prefix: string): string {
  return `${prefix}user-index:epoch`;
}

/**
 * The prefix of stored sessions under a key prefix: `<prefix>session:`. RedisStorage's own
 * `prefix` option is this whole string (default `mqgate:session:`).
 */
export function sessionPrefix(prefix: string): string {
  return `${prefix}session:`;
}

/** A user's stored session (a string of protobuf bytes): `<sessionPrefix>` + userId, e.g. `mqgate:session:<userId>`. */
export function sessionKey(prefixOfSessions: string, userId: string): string {
  return prefixOfSessions + userId;
}

/** One row of {@link KEY_SCHEMA}. */
export interface KeyDoc {
  /** The name with the default prefix and `<placeholders>`, e.g. `mqgate:user:{<userId>}`. */
  pattern: string;
  /** Redis type, as docs/reference/redis-keys.md's table names it. */
  type: 'list' | 'Pub/Sub channel' | 'sorted set' | 'hash' | 'string';
  /** Who writes it. */
  owner: 'RedisTransport' | 'registry' | 'RedisUserIndex' | 'RedisStorage';
}

const P = DEFAULT_KEY_PREFIX;
const rpcLists = rpcListKeys(P, '<type>', '<serverId>');
const registry = registryKeys(P);

/** Every key and channel, built by the functions above with the default prefix; docs/reference/redis-keys.md's table lists exactly these, in this order (plus the detached sessions' key, userKey(detachedKey(userId)), after userKey). */
export const KEY_SCHEMA: readonly KeyDoc[] = [
  { pattern: rpcLists.type, type: 'list', owner: 'RedisTransport' },
  { pattern: rpcLists.server, type: 'list', owner: 'RedisTransport' },
  { pattern: replyChannel(P, '<transportId>'), type: 'Pub/Sub channel', owner: 'RedisTransport' },
  { pattern: registry.servers, type: 'sorted set', owner: 'registry' },
  { pattern: registry.info, type: 'hash', owner: 'registry' },
  { pattern: registry.events, type: 'Pub/Sub channel', owner: 'registry' },
  { pattern: registry.heartbeat, type: 'Pub/Sub channel', owner: 'registry' },
  { pattern: userKey(P, '<userId>'), type: 'hash', owner: 'RedisUserIndex' },
  { pattern: userIndexEpochKey(P), type: 'string', owner: 'RedisUserIndex' },
  { pattern: bansKey(P), type: 'sorted set', owner: 'RedisUserIndex' },
  { pattern: sessionKey(sessionPrefix(P), '<userId>'), type: 'string', owner: 'RedisStorage' },
];
