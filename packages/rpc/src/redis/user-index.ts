import {
  banMember,
  parseBanMember,
  type BanKind,
  type SharedBan,
  fieldOf,
  isCurrent,
  parseField,
  policyLimits,
  type ClaimResult,
  type DuplicateLoginPolicy,
  type LiveGate,
  type UserIndex,
  type UserIndexEntry,
  type UserLocation,
} from '../user-index';
import { randomBytes } from 'node:crypto';
import { createRedis, DEFAULT_REDIS_URL, isCluster, PIPELINED, quitRedis, type RedisClient } from './connection';
import { bansKey, DEFAULT_KEY_PREFIX, userIndexEpochKey, userKey } from './keys';

/** The epoch: the stored one, else ARGV[1], stored (no expiry). KEYS[1] the epoch key. */
const EPOCH = `
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`;

/** Entries per round trip of {@link RedisUserIndex.reassert}. */
const REASSERT_BATCH = 1000;

/** Options of {@link RedisUserIndex}. */
export interface RedisUserIndexOptions {
  /**
   * Redis URL; or pass `redis`. The client created from it has the one connection policy
   * (connection.ts, `PIPELINED`: fail fast, never resend, reconnect forever) and is quit by close().
   * Default `redis://127.0.0.1:6379`.
   */
  url?: string;
  /** An existing ioredis client (standalone or Cluster); its options apply, not closed by close(). */
  redis?: RedisClient;
  /** Key prefix. Keys: `<prefix>user:{<userId>}` (one hash per user, keys.ts `userKey`). Default `mqgate:`. */
  prefix?: string;
  /** ms a user's hash lives after its last change, to collect entries of gates that died. Default 86 400 000 (24 h). */
  idleTtl?: number;
}

/**
 * Claims under the duplicate-login policy, atomically, in one Lua script on one key (so
 * Cluster-safe): ignore entries of gates not live now, drop those of earlier runs, count the others, reject or pick the oldest to
 * kick, then record the new entry. KEYS[1] user hash; ARGV: field, since, max (-1 = no cap),
 * onLimit, idleTtl, then live gates as (serverId, startedAt ms) pairs. An entry is dead when
 * its gate is not live or it was recorded before that gate's current run started.
 */
const CLAIM = `
local key = KEYS[1]
local me = ARGV[1]
local max = tonumber(ARGV[3])
local live = {}
for i = 6, #ARGV, 2 do live[ARGV[i]] = tonumber(ARGV[i + 1]) end
local all = redis.call('HGETALL', key)
local others = {}
for i = 1, #all, 2 do
  local f = all[i]
  if f ~= me then
    local gate = string.match(f, '^(.*)|[^|]*$')
    local since = tonumber(all[i + 1])
    if gate and live[gate] then
      if since and since >= live[gate] then
        table.insert(others, { f, since })
      else
        redis.call('HDEL', key, f) -- recorded by an earlier run of a restarted gate
      end
    end
    -- entries of gates not live now are not counted, and not deleted either: a gate that
    -- lost Redis for a while comes back with its sessions; idleTtl collects the rest
  end
end
local result = { 'OK' }
if max >= 0 and #others + 1 > max then
  if ARGV[4] == 'reject-new' then
    result = { 'REJECT' }
    for _, o in ipairs(others) do table.insert(result, o[1]); table.insert(result, tostring(o[2])) end
    return result
  end
  table.sort(others, function(a, b) return a[2] < b[2] end)
  for i = 1, #others + 1 - max do
    redis.call('HDEL', key, others[i][1])
    table.insert(result, others[i][1])
    table.insert(result, tostring(others[i][2]))
  end
end
redis.call('HSET', key, me, ARGV[2])
redis.call('PEXPIRE', key, ARGV[5])
return result
`;

/**
 * The user index in Redis, shared by every gate and module process: one hash per user,
 * `<prefix>user:{<userId>}`, field `serverId|sessionId`, value the bind time (ms). See
 * {@link UserIndex}. Every method rejects with the ioredis error when Redis cannot answer
 * (with the created client: at once when the connection drops mid-command, or at the next
 * failed reconnect attempt, ≤ 2 s, when Redis is down); nothing is retried later.
 */
export class RedisUserIndex implements UserIndex {
  private readonly redis: RedisClient;
  private readonly owned: boolean;
  private readonly prefix: string;
  private readonly idleTtl: number;

  constructor(options: RedisUserIndexOptions = {}) {
    this.owned = !options.redis;
    this.redis = options.redis ?? createRedis(options.url ?? DEFAULT_REDIS_URL, PIPELINED);
    if (this.owned) this.redis.on('error', () => undefined);
    this.prefix = options.prefix ?? DEFAULT_KEY_PREFIX;
    this.idleTtl = options.idleTtl ?? 86_400_000;
    this.redis.defineCommand('mqgateClaim', { numberOfKeys: 1, lua: CLAIM });
    this.redis.defineCommand('mqgateEpoch', { numberOfKeys: 1, lua: EPOCH });
  }

  /**
   * The index's epoch, `<prefix>user-index:epoch`: made (a random id) by the first caller
   * that finds it missing. A Redis restarted empty, or flushed, has lost it along with every
   * user hash: the next call makes a new one, and every gate sees it changed.
   */
  async epoch(): Promise<string> {
    const candidate = randomBytes(8).toString('hex');
    return (this.redis as unknown as { mqgateEpoch(k: string, v: string): Promise<string> }).mqgateEpoch(userIndexEpochKey(this.prefix), candidate);
  }

  /** HSET + PEXPIRE of each entry, pipelined, {@link REASSERT_BATCH} entries per round trip (no policy is applied). */
  async reassert(entries: readonly UserIndexEntry[]): Promise<void> {
    for (let i = 0; i < entries.length; i += REASSERT_BATCH) {
      if (isCluster(this.redis)) {
        // A Cluster pipeline must stay in one slot: the commands are sent at once instead, not one after the other.
        const r = this.redis;
        await Promise.all(
          entries
            .slice(i, i + REASSERT_BATCH)
            .map(({ userId, location: l }) =>
              r.hset(this.key(userId), fieldOf(l.serverId, l.sessionId), String(l.since)).then(() => r.pexpire(this.key(userId), this.idleTtl)),
            ),
        );
        continue;
      }
      const pipe = this.redis.pipeline();
      for (const { userId, location: l } of entries.slice(i, i + REASSERT_BATCH)) {
        const key = this.key(userId);
        pipe.hset(key, fieldOf(l.serverId, l.sessionId), String(l.since));
        pipe.pexpire(key, this.idleTtl);
      }
      const results = (await pipe.exec()) ?? [];
      const failed = results.find(([err]) => err);
      if (failed) throw failed[0] as Error;
    }
  }

  /** The user's hash: `<prefix>user:{<userId>}`. */
  key(userId: string): string {
    return userKey(this.prefix, userId);
  }

  async claim(userId: string, entry: UserLocation, policy: DuplicateLoginPolicy, liveGates: readonly LiveGate[]): Promise<ClaimResult> {
    const { max, onLimit } = policyLimits(policy);
    const reply = (await (this.redis as unknown as { mqgateClaim(...a: (string | number)[]): Promise<string[]> }).mqgateClaim(
      this.key(userId),
      fieldOf(entry.serverId, entry.sessionId),
      entry.since,
      Number.isFinite(max) ? max : -1,
      onLimit,
      this.idleTtl,
      ...liveGates.flatMap((g) => [g.serverId, g.startedAt]),
    )) as string[];
    const locations: UserLocation[] = [];
    for (let i = 1; i < reply.length; i += 2) locations.push(parseField(reply[i], Number(reply[i + 1])));
    return reply[0] === 'REJECT' ? { rejected: true, existing: locations } : { rejected: false, kick: locations };
  }

  async release(userId: string, serverId: string, sessionId: string): Promise<void> {
    await this.redis.hdel(this.key(userId), fieldOf(serverId, sessionId));
  }

  async locate(userId: string, liveGates: readonly LiveGate[]): Promise<UserLocation[]> {
    const live = new Map(liveGates.map((g) => [g.serverId, g.startedAt]));
    const all = await this.redis.hgetall(this.key(userId));
    return Object.entries(all)
      .map(([f, since]) => parseField(f, Number(since)))
      .filter((l) => isCurrent(l, live));
  }

  /** Records a ban in the sorted set `<prefix>{bans}` (member `<kind>:<value>`, score the end, epoch ms). */
  async ban(kind: BanKind, value: string, untilMs: number): Promise<void> {
    await this.redis.zadd(bansKey(this.prefix), untilMs, banMember(kind, value));
  }

  async unban(kind: BanKind, value: string): Promise<void> {
    await this.redis.zrem(bansKey(this.prefix), banMember(kind, value));
  }

  /** Drops the expired bans (ZREMRANGEBYSCORE up to now), then reads the `limit` soonest to expire. */
  async bans(limit: number): Promise<SharedBan[]> {
    const key = bansKey(this.prefix);
    const now = Date.now();
    await this.redis.zremrangebyscore(key, '-inf', now);
    const flat = await this.redis.zrangebyscore(key, `(${now}`, '+inf', 'WITHSCORES', 'LIMIT', 0, limit);
    const out: SharedBan[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const b = parseBanMember(flat[i], Number(flat[i + 1]));
      if (b) out.push(b);
    }
    return out;
  }

  /** Closes the client it created (not one passed in). */
  async close(): Promise<void> {
    if (this.owned) await quitRedis(this.redis);
  }
}
