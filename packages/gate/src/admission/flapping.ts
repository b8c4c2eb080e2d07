import type { SharedBan } from '@mqgate/rpc';

/** The gate options flapping detection works with (see options.ts for their meaning and defaults). */
export interface FlappingLimits {
  flapping: { maxCount: number; window: number; banTime: number } | false;
  maxTrackedClientIds: number;
  maxFlappingBans: number;
}

/**
 * What {@link FlappingDetector.arrive} says of a CONNECT:
 * - undefined: counted, on to authentication; tell {@link FlappingDetector.settle} how it ended;
 * - `banned`: the client id holds a flapping ban (CONNACK 0x8A Banned / 3.1.1 return code 5);
 * - `flapping`: this CONNECT is the one past `maxCount` in `window`: the client id is banned now;
 * - `inFlight`: `maxCount` CONNECTs are already counted in the window and some are still being
 *   authenticated: refused (CONNACK 0x9F Connection rate exceeded / 3.1.1 return code 3),
 *   not counted, not banned.
 */
export type FlappingVerdict = undefined | 'banned' | 'flapping' | 'inFlight';

/** CONNECTs of one client id in the current window. */
interface Count {
  /** Start of the window, ms. */
  since: number;
  /** CONNECTs accepted (CONNACK 0) in the window. */
  accepted: number;
  /** CONNECTs counted at arrival whose authentication has not settled. */
  inFlight: number;
}

/**
 * Flapping detection (EMQX's `flapping_detect`), kept apart from the operator's bans
 * (admission/tables.ts): its own bounded count table (maxTrackedClientIds, oldest forgotten
 * first) and its own bounded ban table (maxFlappingBans). A full ban table evicts the
 * flapping ban made first (with one banTime for all, also the one that ends soonest) instead
 * of refusing the new one, so a stream of throw-away client ids can neither stop a real
 * flapper from being banned nor take the room of an operator's ban.
 *
 * A CONNECT counts when it arrives, before its authentication settles, so that many
 * CONNECTs with one client id at once cannot all pass while none is accepted yet: at most
 * `maxCount` are accepted per window. One that then fails authentication (or closes before
 * its CONNACK) is given back by {@link settle}, so that bad credentials never get another
 * client's id banned. O(1) per CONNECT.
 */
export class FlappingDetector {
  private readonly counts = new Map<string, Count>();
  /** client id → end of its ban, epoch ms; insertion order is ban order (oldest first). */
  private readonly bans = new Map<string, number>();
  /** Flapping bans evicted to make room since the gate started. */
  evicted = 0;

  constructor(
    private readonly limits: FlappingLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Client ids whose CONNECTs are counted. */
  get trackedClientIds(): number {
    return this.counts.size;
  }

  /** True when maxFlappingBans flapping bans are held (the next one evicts the oldest). */
  get full(): boolean {
    return this.bans.size >= this.limits.maxFlappingBans;
  }

  /** A CONNECT of `clientId` arrived (gate-assigned ids are not given here: they never repeat). */
  arrive(clientId: string): FlappingVerdict {
    if (this.bans.size > 0 && this.isBanned(clientId)) return 'banned';
    const f = this.limits.flapping;
    if (!f) return undefined;
    const t = this.now();
    let e = this.counts.get(clientId);
    if (e && t - e.since > f.window) {
      // A new window; CONNECTs still being authenticated carry over into it.
      this.counts.delete(clientId);
      e = { since: t, accepted: 0, inFlight: e.inFlight };
      this.counts.set(clientId, e);
    } else if (!e) {
      if (this.counts.size >= this.limits.maxTrackedClientIds) this.counts.delete(this.counts.keys().next().value as string);
      e = { since: t, accepted: 0, inFlight: 0 };
      this.counts.set(clientId, e);
    }
    if (e.accepted >= f.maxCount) {
      this.counts.delete(clientId);
      this.ban(clientId, t + f.banTime);
      return 'flapping';
    }
    if (e.accepted + e.inFlight >= f.maxCount) return 'inFlight';
    e.inFlight++;
    return undefined;
  }

  /** A CONNECT {@link arrive} counted has settled: `accepted` (CONNACK 0) or not (refused, or closed before its CONNACK: given back). */
  settle(clientId: string, accepted: boolean): void {
    const e = this.counts.get(clientId);
    if (!e) return; // forgotten (table full) or banned since
    if (e.inFlight > 0) e.inFlight--;
    if (accepted) e.accepted++;
  }

  /** Records a flapping ban; a full table evicts the oldest first (O(1)). */
  private ban(clientId: string, untilMs: number): void {
    this.bans.delete(clientId);
    if (this.bans.size >= this.limits.maxFlappingBans) {
      // The first in the map was banned first: with one banTime for all, it also ends soonest.
      const oldest = this.bans.keys().next().value as string;
      if ((this.bans.get(oldest) as number) > this.now()) this.evicted++;
      this.bans.delete(oldest);
    }
    this.bans.set(clientId, untilMs);
  }

  /** True when a flapping ban of `clientId` holds now (an expired one is dropped). */
  isBanned(clientId: string): boolean {
    const until = this.bans.get(clientId);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.bans.delete(clientId);
    return false;
  }

  /** Lifts a flapping ban; false when there was none. */
  unban(clientId: string): boolean {
    return this.bans.delete(clientId);
  }

  /** The flapping bans in force, as `clientId` bans. */
  list(): SharedBan[] {
    this.dropExpired();
    return [...this.bans].map(([value, untilMs]) => ({ kind: 'clientId', value, untilMs }));
  }

  /** Drops expired bans and counts whose window is over with nothing in flight (run every banSyncInterval). */
  sweep(): void {
    this.dropExpired();
    const f = this.limits.flapping;
    const t = this.now();
    if (f) for (const [id, e] of this.counts) if (t - e.since > f.window && e.inFlight === 0) this.counts.delete(id);
  }

  private dropExpired(): void {
    const t = this.now();
    for (const [id, until] of this.bans) if (until <= t) this.bans.delete(id);
  }
}
