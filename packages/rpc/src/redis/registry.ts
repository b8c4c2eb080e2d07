import type { ServerInfo } from '../transport';
import type { RedisClient } from './connection';
import { registryKeys, type RegistryKeys } from './keys';

/**
 * The server registry RedisTransport keeps in Redis (mqant's Consul registry, §4.2: a TTL
 * of 20 s refreshed every 10 s), and every transport's local cache of it.
 *
 * In Redis (`prefix` default `mqgate:`; names built by keys.ts), never read with KEYS or SCAN:
 * - `<prefix>{registry}:servers`, a ZSET: member serverId, score = expiry in Redis server
 *   time (epoch ms). A live server re-adds itself every `registryInterval` with score
 *   now + `registryTtl`; a crashed one stops, and is removed by the next reader after that.
 * - `<prefix>{registry}:info`, a HASH: serverId → JSON `{serverId, moduleType, meta}`,
 *   written and removed together with the ZSET member (one Lua script; the `{registry}` hash
 *   tag keeps both in one Cluster slot).
 * - Both keys get a Redis TTL of at least `registryTtl` on every registration, so they
 *   disappear when every server is gone (crashed ones included) and nobody reads them.
 * - `<prefix>registry:events`, a Pub/Sub channel: JSON `{"event":"join","server":ServerInfo,
 *   "ttl":ms}` when a server registers (first time, or again after its entry was lost) and
 *   `{"event":"leave","server":ServerInfo}` when it stops cleanly.
 *
 * Expiry uses Redis's clock (the scripts call TIME) for the scores and converts to the local
 * clock when reading, so clock skew between hosts does not shorten or stretch the TTL.
 */

/** Called when a server enters or leaves the local cache (or stops / resumes being live). */
export interface RegistryListener {
  joined(info: ServerInfo): void;
  left(info: ServerInfo): void;
  /** A server died (its heartbeats stopped, or its entry expired), after `left`. Not called for a clean leave. */
  lost?(info: ServerInfo, why: string): void;
}

/** Registry meta a server that sends heartbeats carries: its heartbeat interval, ms. */
export const HEARTBEAT_META = 'heartbeat';

// Effects replication is the default from Redis 5; before it, writes after TIME need it.
const NOW = `if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * KEYS servers, info; ARGV id, ttl ms, info JSON → 1 when the member is new, else 0. Both
 * keys are made to live at least ttl ms more, so they vanish once every server is gone.
 */
const REGISTER = `${NOW}
local ttl = tonumber(ARGV[2])
local added = redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return added`;

/** KEYS servers, info; ARGV id → 1 when it was registered. */
const DEREGISTER = `local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return removed`;

/**
 * KEYS servers, info → {now, ZRANGE WITHSCORES, HGETALL} after removing expired members
 * (score < now) and their info.
 */
const SNAPSHOT = `${NOW}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now))
for i = 1, #dead do
  redis.call('ZREM', KEYS[1], dead[i])
  redis.call('HDEL', KEYS[2], dead[i])
end
return {now, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), redis.call('HGETALL', KEYS[2])}`;

interface RegistryScripts {
  mqgateRegistryRegister(servers: string, info: string, id: string, ttl: number, json: string): Promise<number>;
  mqgateRegistryDeregister(servers: string, info: string, id: string): Promise<number>;
  mqgateRegistrySnapshot(servers: string, info: string): Promise<[number, string[], string[]]>;
}

interface CacheEntry {
  info: ServerInfo;
  /** Local epoch ms. */
  expiresAt: number;
  /** Local epoch ms of its last heartbeat (or of when it entered the cache). */
  beatAt: number;
  /** It sends heartbeats (meta `heartbeat`), so it is judged by them. */
  beats: boolean;
  /** One of this transport's own servers: never judged by heartbeats. */
  local: boolean;
  /** Its heartbeats stopped: in the cache but not live. */
  down: boolean;
}

interface RegistryEvent {
  event: 'join' | 'leave';
  server: ServerInfo;
  ttl?: number;
}

/**
 * One transport's view of the registry: writes its own servers' entries and keeps a local
 * cache of every live server, fed by join/leave events ({@link onEvent}) and by full
 * re-reads ({@link load}). Reads of the cache are synchronous.
 */
export class RedisRegistry {
  readonly keys: RegistryKeys;
  private readonly entries = new Map<string, CacheEntry>();
  private readonly byType = new Map<string, Map<string, CacheEntry>>();
  /** Local time of the last event or local change per server id, so an older snapshot does not undo it. */
  private readonly changedAt = new Map<string, number>();
  private readonly scripts: RegistryScripts;
  private loading: Promise<void> | undefined;
  /** Since when (local ms) heartbeats can be heard (the subscriber is connected); undefined while it is not. */
  private listeningSince: number | undefined;
  /** Local ms of the last {@link sweep}. */
  private lastSweep = Date.now();

  /**
   * @param client command connection (scripts are defined on it with `defineCommand`).
   * @param ttl ms an entry this registry writes lives without a refresh.
   * @param heartbeatTimeout ms without a heartbeat after which a server that sends them is down.
   */
  constructor(
    private readonly client: RedisClient,
    prefix: string,
    private readonly ttl: number,
    private readonly listener: RegistryListener,
    private readonly heartbeatTimeout: number = ttl,
  ) {
    this.keys = registryKeys(prefix);
    client.defineCommand('mqgateRegistryRegister', { numberOfKeys: 2, lua: REGISTER });
    client.defineCommand('mqgateRegistryDeregister', { numberOfKeys: 2, lua: DEREGISTER });
    client.defineCommand('mqgateRegistrySnapshot', { numberOfKeys: 2, lua: SNAPSHOT });
    this.scripts = client as unknown as RegistryScripts;
  }

  /**
   * Writes (or refreshes) a server's entry with expiry now + ttl, and puts it in the local
   * cache. Resolves `true` when the entry was not in Redis before (first registration, or
   * after it expired or Redis lost it); the caller then announces it with {@link publishJoin}.
   */
  async register(info: ServerInfo): Promise<boolean> {
    const added = await this.scripts.mqgateRegistryRegister(this.keys.servers, this.keys.info, info.serverId, this.ttl, JSON.stringify(info));
    return added === 1;
  }

  /** Publishes a join event for `info`. */
  async publishJoin(info: ServerInfo): Promise<void> {
    const event: RegistryEvent = { event: 'join', server: info, ttl: this.ttl };
    await this.client.publish(this.keys.events, JSON.stringify(event));
  }

  /** Removes a server's entry from Redis and publishes a leave event. */
  async deregister(info: ServerInfo): Promise<void> {
    await this.scripts.mqgateRegistryDeregister(this.keys.servers, this.keys.info, info.serverId);
    const event: RegistryEvent = { event: 'leave', server: info };
    await this.client.publish(this.keys.events, JSON.stringify(event));
  }

  /** Puts one of this transport's own servers in the local cache (expiry now + ttl). */
  noteLocalJoin(info: ServerInfo): void {
    const now = Date.now();
    this.changedAt.set(info.serverId, now);
    this.upsert(info, now + this.ttl);
    const entry = this.entries.get(info.serverId);
    if (entry) entry.local = true;
  }

  /** Takes one of this transport's own servers out of the local cache. */
  noteLocalLeave(serverId: string): void {
    this.changedAt.set(serverId, Date.now());
    this.remove(serverId);
  }

  /**
   * Re-reads the whole registry (removing expired entries from Redis on the way) and makes
   * the cache match it, emitting joins and leaves. Changes learned from events after the read
   * started win over it. Concurrent calls share one read.
   */
  load(): Promise<void> {
    if (!this.loading) {
      const started = Date.now();
      this.loading = this.scripts
        .mqgateRegistrySnapshot(this.keys.servers, this.keys.info)
        .then((snapshot) => this.apply(snapshot, started))
        .finally(() => {
          this.loading = undefined;
        });
    }
    return this.loading;
  }

  /** Applies a message from the events channel; malformed messages are ignored. */
  onEvent(text: string): void {
    let e: RegistryEvent;
    try {
      e = JSON.parse(text) as RegistryEvent;
    } catch {
      return;
    }
    const info = e?.server;
    if (!info || typeof info.serverId !== 'string' || typeof info.moduleType !== 'string') return;
    const now = Date.now();
    if (e.event === 'join') {
      this.changedAt.set(info.serverId, now);
      const ttl = typeof e.ttl === 'number' && e.ttl > 0 ? e.ttl : this.ttl;
      this.upsert(cleanInfo(info), now + ttl);
      const entry = this.entries.get(info.serverId);
      if (entry?.down) {
        // registered again (a restart under the same id): live, a heartbeat period of grace
        entry.down = false;
        entry.beatAt = now;
        this.listener.joined(copyInfo(entry.info));
      }
    } else if (e.event === 'leave') {
      this.changedAt.set(info.serverId, now);
      this.remove(info.serverId);
    }
  }

  /** Drops entries whose expiry has passed (a refresh that failed, or a crashed server). */
  pruneExpired(): void {
    const now = Date.now();
    for (const [id, entry] of [...this.entries]) {
      if (entry.expiresAt > now) continue;
      const wasLive = !entry.down;
      this.remove(id);
      if (wasLive && !entry.local) this.listener.lost?.(copyInfo(entry.info), `lost its registry entry (no refresh for ${this.ttl} ms)`);
    }
  }

  /**
   * Applies a heartbeat message (JSON array of serverIds): they are live now. Malformed ones
   * are ignored. Returns true when it names a server this cache does not hold (or holds
   * expired): a join this transport missed, such as one published while its subscriber was
   * resubscribing after a Redis restart, or a re-read that ran before that server wrote its
   * entry again; the caller then re-reads the registry instead of waiting for the next
   * `registryInterval` (10 s), during which calls to that server failed with NO_SERVER.
   */
  onHeartbeat(text: string): boolean {
    let ids: unknown;
    try {
      ids = JSON.parse(text);
    } catch {
      return false;
    }
    if (!Array.isArray(ids)) return false;
    const now = Date.now();
    let unknown = false;
    for (const id of ids) {
      if (typeof id !== 'string') continue;
      const entry = this.entries.get(id);
      if (!entry || entry.expiresAt <= now) {
        unknown = true;
        continue;
      }
      entry.beatAt = now;
      if (entry.down) {
        entry.down = false;
        this.listener.joined(copyInfo(entry.info));
      }
    }
    return unknown;
  }

  /** Heartbeats can be heard from `since` (local ms; the subscriber is connected), or not at all (undefined). */
  listening(since: number | undefined): void {
    this.listeningSince = since;
  }

  /**
   * Marks down every server that sends heartbeats and was not heard from within
   * `heartbeatTimeout` ms (counted from when this transport started listening, at the
   * earliest): `left`, then `lost`. Does nothing while heartbeats cannot be heard. Called
   * every `interval` ms; a longer gap means this process stalled, and restarts the count.
   */
  sweep(interval: number): void {
    if (this.listeningSince === undefined) return;
    const now = Date.now();
    const lag = now - this.lastSweep;
    this.lastSweep = now;
    // This process itself stalled (heartbeats may wait unread in its socket): judge nobody by that gap.
    if (lag > 2 * interval) this.listeningSince = Math.max(this.listeningSince, now);
    for (const entry of [...this.entries.values()]) {
      if (!entry.beats || entry.local || entry.down) continue;
      if (now - Math.max(entry.beatAt, this.listeningSince) <= this.heartbeatTimeout) continue;
      entry.down = true;
      const info = copyInfo(entry.info);
      this.listener.left(info);
      this.listener.lost?.(info, `stopped answering (no heartbeat for ${this.heartbeatTimeout} ms)`);
    }
  }

  /** A live server's info (not copied), or undefined. */
  get(serverId: string): ServerInfo | undefined {
    const entry = this.entries.get(serverId);
    return entry && entry.expiresAt > Date.now() && !entry.down ? entry.info : undefined;
  }

  /** Live servers of a type (infos not copied), in no particular order. */
  live(moduleType: string): ServerInfo[] {
    const map = this.byType.get(moduleType);
    if (!map) return [];
    const now = Date.now();
    const out: ServerInfo[] = [];
    for (const entry of map.values()) if (entry.expiresAt > now && !entry.down) out.push(entry.info);
    return out;
  }

  /** Copies of the live servers of a type, or of all, sorted by serverId. */
  list(moduleType?: string): ServerInfo[] {
    const now = Date.now();
    const source = moduleType === undefined ? this.entries.values() : (this.byType.get(moduleType)?.values() ?? []);
    const out: ServerInfo[] = [];
    for (const entry of source) if (entry.expiresAt > now && !entry.down) out.push(copyInfo(entry.info));
    return out.sort((a, b) => (a.serverId < b.serverId ? -1 : a.serverId > b.serverId ? 1 : 0));
  }

  private apply([redisNow, zrange, hash]: [number, string[], string[]], started: number): void {
    const infos = new Map<string, string>();
    for (let i = 0; i + 1 < hash.length; i += 2) infos.set(hash[i], hash[i + 1]);
    const localNow = Date.now();
    const seen = new Set<string>();
    const changedSince = (id: string) => (this.changedAt.get(id) ?? -Infinity) >= started;
    for (let i = 0; i + 1 < zrange.length; i += 2) {
      const id = zrange[i];
      seen.add(id);
      if (changedSince(id)) continue;
      const info = parseInfo(infos.get(id));
      if (!info || info.serverId !== id) continue;
      this.upsert(info, localNow + (Number(zrange[i + 1]) - Number(redisNow)));
    }
    for (const id of [...this.entries.keys()]) if (!seen.has(id) && !changedSince(id)) this.remove(id);
    for (const [id, at] of [...this.changedAt]) if (at < started) this.changedAt.delete(id);
  }

  private upsert(info: ServerInfo, expiresAt: number): void {
    const old = this.entries.get(info.serverId);
    if (old && old.info.moduleType === info.moduleType) {
      old.expiresAt = expiresAt;
      old.info = info;
      const beats = info.meta?.[HEARTBEAT_META] !== undefined;
      if (beats && !old.beats) old.beatAt = Date.now(); // judged by heartbeats from now, not from when it was first seen
      old.beats = beats;
      return;
    }
    if (old) this.remove(info.serverId);
    const now = Date.now();
    if (expiresAt <= now) return;
    const entry: CacheEntry = { info, expiresAt, beatAt: now, beats: info.meta?.[HEARTBEAT_META] !== undefined, local: false, down: false };
    this.entries.set(info.serverId, entry);
    let map = this.byType.get(info.moduleType);
    if (!map) this.byType.set(info.moduleType, (map = new Map()));
    map.set(info.serverId, entry);
    this.listener.joined(copyInfo(info));
  }

  private remove(serverId: string): void {
    const entry = this.entries.get(serverId);
    if (!entry) return;
    this.entries.delete(serverId);
    const map = this.byType.get(entry.info.moduleType);
    map?.delete(serverId);
    if (map && map.size === 0) this.byType.delete(entry.info.moduleType);
    if (!entry.down) this.listener.left(copyInfo(entry.info));
  }
}

function parseInfo(json: string | undefined): ServerInfo | undefined {
  if (json === undefined) return undefined;
  try {
    const info = JSON.parse(json) as ServerInfo;
    if (typeof info?.serverId !== 'string' || typeof info.moduleType !== 'string') return undefined;
    return cleanInfo(info);
  } catch {
    return undefined;
  }
}

/** Only the ServerInfo fields, with string metadata. */
function cleanInfo(info: ServerInfo): ServerInfo {
  const out: ServerInfo = { serverId: info.serverId, moduleType: info.moduleType };
  if (info.meta && typeof info.meta === 'object') {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(info.meta)) meta[k] = String(v);
    out.meta = meta;
  }
  return out;
}

/** A copy of `info` (and of its meta), so a caller cannot change the cache. */
export function copyInfo(info: ServerInfo): ServerInfo {
  return info.meta ? { ...info, meta: { ...info.meta } } : { ...info };
}
