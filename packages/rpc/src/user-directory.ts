import { GATE_MODULE_TYPE, GateFunctions } from './gate-api';
import type { RpcTransport, RpcValue } from './transport';
import type { UserIndex, UserLocation } from './user-index';

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
  constructor(
    private readonly transport: RpcTransport,
    private readonly index: UserIndex,
  ) {}

  /** Server ids of the live gates, as the transport's registry knows them. */
  gates(): string[] {
    return this.transport.servers(GATE_MODULE_TYPE).map((s) => s.serverId);
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
          .call({ serverId }, GateFunctions.SendBatch, [ids.join(','), topic, body as RpcValue])
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
        this.transport.call({ serverId: l.serverId }, GateFunctions.Close, [l.sessionId, reason]).then(
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
      this.gates().map((serverId) =>
        this.transport.call({ serverId }, GateFunctions.BroadCast, [topic, body as RpcValue]).then(
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
      this.gates().map(async (serverId) => {
        try {
          const c = (await this.transport.call({ serverId }, GateFunctions.Counts, [])) as unknown as GateCounts;
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

function group(locations: UserLocation[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const l of locations) {
    const list = m.get(l.serverId) ?? [];
    list.push(l.sessionId);
    m.set(l.serverId, list);
  }
  return m;
}
