import { readFileSync } from 'node:fs';
import { optionChecker, RANGES, tokenBucket } from '@mqgate/rpc/internal';

/** Admission at the door: connection caps, connect rate, flapping detection, bans (see admission/tables.ts). Part of GateOptions; defaults in {@link ADMISSION_DEFAULTS}. */
export interface AdmissionOptions {
  /**
   * Open connections (CONNECT pending included) beyond which a new one is closed at accept,
   * before its CONNECT is read (counted in `mqgate_admission_refused_total{reason="maxConnections"}`).
   * 0 = no cap. Default `'auto'`: the process's open-files soft limit L (Linux: `/proc/self/limits`
   * "Max open files", which Node has already raised to the hard limit; elsewhere or unreadable:
   * 10 000) minus a reserve of max(64, L / 10) descriptors for the transport, storage and
   * metrics sockets, listeners and files: an accept loop hitting EMFILE stops serving everyone,
   * a cap below it refuses only the newcomer (see {@link autoMaxConnections}).
   */
  maxConnections?: number | 'auto';
  /**
   * Open connections per client address (see `trustedProxies`) beyond which a new one is closed
   * at accept. 0 = no cap. Default 1000: one host cannot take the gate's every descriptor, yet a
   * carrier-grade NAT (RFC 6888: a public address shared by hundreds of subscribers) is not cut.
   */
  maxConnectionsPerIp?: number;
  /**
   * New connections per second per client address, a token bucket: `burst` at once, then
   * `perSecond` (EMQX's listener `max_conn_rate`, here per address). Past it a connection is
   * closed at accept, before CONNECT is read. `false` = no rate. Default `{ perSecond: 50, burst: 200 }`:
   * a host in a reconnect loop is held to 50/s, while 1000 clients behind one NAT come back
   * from a gate restart in about 16 s.
   */
  connectRate?: { perSecond: number; burst: number } | false;
  /**
   * Client addresses the per-address counts and rate buckets track. Past it the idle ones
   * (no open connection) are evicted, oldest first; when none is idle among the oldest 64, a
   * connection from a new address is refused (reason `maxTrackedIps`). Default 100 000 (a few MB).
   */
  maxTrackedIps?: number;
  /**
   * Flapping detection (EMQX's `flapping_detect`, admission/flapping.ts): once a client id's
   * CONNECTs were accepted `maxCount` times within `window` ms, its next CONNECT gets CONNACK
   * 0x8A Banned / 3.1.1 return code 5 and the client id is banned for `banTime` ms (later
   * CONNECTs get the same). A CONNECT counts when it arrives, before its authentication
   * settles: one that finds `maxCount` already counted, some still authenticating, gets 0x9F
   * Connection rate exceeded / 3.1.1 return code 3 (not banned), so at most `maxCount` are
   * accepted per window however many arrive at once. One refused by authentication (or closed
   * before its CONNACK) is given back, so nobody can get another client's id banned. By client
   * id, not address: many clients share an address, which `connectRate` covers. `false` = off.
   * Default `{ maxCount: 15, window: 60 000, banTime: 300 000 }` (EMQX's).
   */
  flapping?: { maxCount: number; window: number; banTime: number } | false;
  /** Client ids whose CONNECTs flapping detection counts at once; past it the oldest is forgotten. Default 100 000. */
  maxTrackedClientIds?: number;
  /**
   * Operator bans held (`gate.ban` and the user index's shared list; flapping bans have their
   * own table, `maxFlappingBans`); a `gate.ban` past it throws RangeError. Expired bans do not
   * count. Default 10 000.
   */
  maxBans?: number;
  /**
   * Flapping bans held (client ids), apart from `maxBans`: when full, a new flapping ban evicts
   * the oldest one (with one banTime, the one that ends soonest), never an operator's ban, and
   * the gate warns once (`flapping-bans-full`) until it has room again. Integer ≥ 1; OptionError
   * (BAD_OPTION) otherwise. Default 10 000.
   */
  maxFlappingBans?: number;
  /**
   * ms between two reads of the shared ban list from the user index (when it supports bans,
   * like RedisUserIndex): a ban made on another gate takes effect here within this. Never read
   * per connection. Default 5000.
   */
  banSyncInterval?: number;
}

/** {@link AdmissionOptions} resolved: every default applied, every value checked. */
export type ResolvedAdmissionOptions = Required<Omit<AdmissionOptions, 'maxConnections'>> & {
  maxConnections: number;
};

/** The defaults of {@link AdmissionOptions}. */
export const ADMISSION_DEFAULTS = {
  maxConnections: 'auto' as number | 'auto',
  maxConnectionsPerIp: 1000,
  connectRate: { perSecond: 50, burst: 200 } as { perSecond: number; burst: number } | false,
  maxTrackedIps: 100_000,
  flapping: { maxCount: 15, window: 60_000, banTime: 300_000 } as { maxCount: number; window: number; banTime: number } | false,
  maxTrackedClientIds: 100_000,
  maxBans: 10_000,
  maxFlappingBans: 10_000,
  banSyncInterval: 5000,
} as const;

const check = optionChecker('gate option');

/**
 * Fills in the defaults of {@link AdmissionOptions} and checks them.
 * @throws OptionError (code BAD_OPTION, a RangeError) naming the option, its range and the value.
 */
export function resolveAdmissionOptions(o: AdmissionOptions): ResolvedAdmissionOptions {
  const D = ADMISSION_DEFAULTS;
  return {
    maxConnections:
      (o.maxConnections ?? D.maxConnections) === 'auto' ? autoMaxConnections() : check('maxConnections', o.maxConnections as number, RANGES.count),
    maxConnectionsPerIp: check('maxConnectionsPerIp', o.maxConnectionsPerIp ?? D.maxConnectionsPerIp, RANGES.count),
    connectRate: tokenBucket('gate option', 'connectRate', o.connectRate, D.connectRate),
    maxTrackedIps: check('maxTrackedIps', o.maxTrackedIps ?? D.maxTrackedIps, RANGES.positive),
    flapping: flappingOf(o.flapping ?? D.flapping),
    maxTrackedClientIds: check('maxTrackedClientIds', o.maxTrackedClientIds ?? D.maxTrackedClientIds, RANGES.positive),
    maxBans: check('maxBans', o.maxBans ?? D.maxBans, RANGES.positive),
    maxFlappingBans: check('maxFlappingBans', o.maxFlappingBans ?? D.maxFlappingBans, RANGES.positiveInteger),
    banSyncInterval: check('banSyncInterval', o.banSyncInterval ?? D.banSyncInterval, RANGES.positive),
  };
}

/** maxConnections' `'auto'` where the open-files limit cannot be read (not Linux, or unlimited). */
export const FALLBACK_FILE_LIMIT = 10_000;

/** The process's open-files soft limit: `/proc/self/limits` "Max open files" on Linux, else {@link FALLBACK_FILE_LIMIT}. */
export function fileDescriptorLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(read());
    const n = m ? Number(m[1]) : NaN;
    return Number.isSafeInteger(n) && n > 0 ? n : FALLBACK_FILE_LIMIT;
  } catch {
    return FALLBACK_FILE_LIMIT;
  }
}

/**
 * maxConnections `'auto'`: the open-files soft limit L minus a reserve of max(64, ⌈L / 10⌉)
 * for everything else the process opens (transport and storage sockets, listeners, metrics,
 * files), at least 1. L = 1024 gives 921; L = 20 000 gives 18 000; L = 1 048 576 gives 943 718.
 */
export function autoMaxConnections(limit = fileDescriptorLimit()): number {
  return Math.max(1, limit - Math.max(64, Math.ceil(limit / 10)));
}

function flappingOf(o: { maxCount: number; window: number; banTime: number } | false): { maxCount: number; window: number; banTime: number } | false {
  if (o === false) return false;
  return {
    maxCount: check('flapping.maxCount', o.maxCount, RANGES.positive),
    window: check('flapping.window', o.window, RANGES.positive),
    banTime: check('flapping.banTime', o.banTime, RANGES.positive),
  };
}
