import type { ServerInfo } from './transport';

/**
 * The one sticky-pick rule of every transport (an `Address` with `key`): rendezvous (highest
 * random weight) hashing. Each candidate scores `mix(FNV-1a(serverId + "\0" + key))` and the
 * highest wins (ties: the smaller serverId), so every transport with the same live set picks
 * the same server, and when a server leaves only its keys move.
 *
 * @param key the sticky key, e.g. a userId.
 * @param candidates at least one; with none the result is `undefined` (typed as T: callers
 *   check for an empty set first).
 * @param idOf the serverId of a candidate. Default: `candidate.serverId` (a ServerInfo).
 */
export function pickSticky(key: string, candidates: readonly ServerInfo[]): ServerInfo;
export function pickSticky<T>(key: string, candidates: readonly T[], idOf: (candidate: T) => string): T;
export function pickSticky<T>(key: string, candidates: readonly T[], idOf = (c: T) => (c as unknown as ServerInfo).serverId): T {
  let best = candidates[0];
  let bestId = best === undefined ? '' : idOf(best);
  let bestScore = -1;
  for (const c of candidates) {
    const id = idOf(c);
    const score = mix(hash(`${id}\u0000${key}`));
    if (score > bestScore || (score === bestScore && id < bestId)) {
      best = c;
      bestId = id;
      bestScore = score;
    }
  }
  return best;
}

/** FNV-1a, 32 bit, of the string's UTF-16 code units: an unsigned 32-bit integer. */
export function hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finalizer: spreads FNV's low-entropy high bits. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
