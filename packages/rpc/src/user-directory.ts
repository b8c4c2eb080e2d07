import { GATE_MODULE_TYPE, GateFunctions } from './gate-api';
import type { RpcTransport, RpcValue } from './transport';
import { liveGatesOf, type LiveGate, type UserIndex, type UserLocation } from './user-index';

/** Session counts of one gate (as `gate.counts()`). */
export interface GateCounts {
  total: number;
  bound: number;
  guests: number;
}

/**
 * Users across gates, from any process of the app (a gate, a module, a tool): find where a
 * user is connected, push to them, kick them, broadcast to every gate, count sessions.
 * Reads the user index and calls the gates' session service over the transport.
 */
export class UserDirectory {
  /** ms each call to one gate may take: a gate that crashed but is still registered is skipped after it. */
  readonly gateTimeout: number;

  constructor(
    private readonly transport: RpcTransport,
    private readonly index: UserIndex,
    options: { gateTimeout?: number } = {},
  ) {
    this.gateTimeout = options.gateTimeout ?? gateCallTimeout(transport);
  }

  /** The live gates, as the transport's registry knows them. */
  gates(): LiveGate[] {
    return liveGatesOf(this.transport.servers(GATE_MODULE_TYPE));
  }

  /** Where the user's bound sessions are: `{serverId, sessionId, since}` each. */
  locate(userId: string): Promise<UserLocation[]> {
    return this.index.locate(userId, this.gates());
  }

  /** True when the user has a bound session on any live gate. */
  async isConnect(userId: string): Promise<boolean> {
    return (await this.locate(userId)).length > 0;
  }

  /** Pushes to every session of the user on every gate; resolves with how many got it. */
  async sendToUser(userId: string, topic: string, body: Uint8Array | string | object): Promise<number> {
    const byGate = group(await this.locate(userId));
    const counts = await Promise.all(
      [...byGate].map(([serverId, ids]) =>
        this.transport
          .call({ serverId }, GateFunctions.SendBatch, [ids.join(','), topic, body as RpcValue], { timeout: this.gateTimeout })
          .then((n) => (typeof n === 'number' ? n : 0), () => 0),
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Closes every session of the user on every gate; each client first gets `gate/kick`
   * `{"reason"}`. Resolves with how many sessions were closed.
   */
  async kickUser(userId: string, reason: string): Promise<number> {
    const locations = await this.locate(userId);
    const done = await Promise.all(
      locations.map((l) =>
        this.transport.call({ serverId: l.serverId }, GateFunctions.Close, [l.sessionId, reason], { timeout: this.gateTimeout }).then(
          () => 1,
          () => 0,
        ),
      ),
    );
    return done.reduce<number>((a, b) => a + b, 0);
  }

  /** Pushes to every session on every live gate; resolves with how many got it. */
  async broadcast(topic: string, body: Uint8Array | string | object): Promise<number> {
    const counts = await Promise.all(
      this.gates().map(({ serverId }) =>
        this.transport.call({ serverId }, GateFunctions.BroadCast, [topic, body as RpcValue], { timeout: this.gateTimeout }).then(
          (n) => (typeof n === 'number' ? n : 0),
          () => 0,
        ),
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Session counts per live gate and in total (gates that do not answer are left out). */
  async counts(): Promise<{ total: GateCounts; gates: Record<string, GateCounts> }> {
    const gates: Record<string, GateCounts> = {};
    const total: GateCounts = { total: 0, bound: 0, guests: 0 };
    await Promise.all(
      this.gates().map(async ({ serverId }) => {
        try {
          const c = (await this.transport.call({ serverId }, GateFunctions.Counts, [], { timeout: this.gateTimeout })) as unknown as GateCounts;
          gates[serverId] = c;
          total.total += c.total;
          total.bound += c.bound;
          total.guests += c.guests;
        } catch {
          // a gate that just died: its sessions are gone too
        }
      }),
    );
    return { total, gates };
  }
}

/**
 * Default bound of one call to one gate, ms: a quarter of the transport's call timeout, at
 * most 2 000. A live gate answers these in well under a millisecond of work; a crashed one
 * that the registry still lists (until its TTL) must not hold the caller past its deadline.
 */
export function gateCallTimeout(transport: RpcTransport): number {
  return Math.max(50, Math.min(2_000, Math.floor(transport.defaultTimeout / 4)));
}

function group(locations: UserLocation[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const l of locations) {
    const list = m.get(l.serverId) ?? [];
    list.push(l.sessionId);
    m.set(l.serverId, list);
  }
  return m;
}
