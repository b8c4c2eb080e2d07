import { GATE_MODULE_TYPE } from './gate-api';
import { checkQos, gateClient, type GateClient, type PushQos, type SessionCounts } from './gate-service';
import type { Mqtt5PushProperties } from './mqtt5';
import type { RpcTransport } from './transport';
import { detachedKey, liveGatesOf, type LiveGate, type UserIndex, type UserLocation } from './user-index';

/** What {@link UserDirectory.sendToUser} and {@link UserDirectory.broadcast} accept as a body: bytes as is, a string as UTF-8, anything else as JSON. */
export type PushBody = Uint8Array | string | object;

/** A push body as bytes: bytes as is, a string as UTF-8, anything else as UTF-8 JSON. */
export function pushBytes(body: PushBody): Uint8Array {
  if (body instanceof Uint8Array) return body;
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
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

  /**
   * Pushes to every session of the user on every gate, detached ones included (they keep it
   * for a resume); `properties` reach MQTT 5 clients only; `qos` 1 delivers at least once
   * (see {@link PushQos}). Resolves with how many got it.
   * @throws TypeError for a qos other than 0 or 1.
   */
  async sendToUser(userId: string, topic: string, body: PushBody, properties?: Mqtt5PushProperties, qos?: PushQos): Promise<number> {
    checkQos('UserDirectory.sendToUser', qos);
    const bytes = pushBytes(body);
    const [bound, detached] = await Promise.all([this.locate(userId), this.index.locate(detachedKey(userId), this.gates())]);
    const byGate = group([...bound, ...detached]);
    const counts = await Promise.all(
      [...byGate].map(([serverId, ids]) =>
        this.gate(serverId)
          .sendBatch(ids, topic, bytes, properties, qos)
          .catch(() => 0),
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  /** The session service of one gate, each call bounded by `gateTimeout`. */
  private gate(serverId: string): GateClient {
    return gateClient(this.transport, serverId, { timeout: this.gateTimeout });
  }

  /**
   * Closes every session of the user on every gate; each client first gets `gate/kick`
   * `{"reason"}`. Resolves with how many sessions were closed.
   */
  async kickUser(userId: string, reason: string): Promise<number> {
    const locations = await this.locate(userId);
    const done = await Promise.all(
      locations.map((l) =>
        this.gate(l.serverId)
          .close(l.sessionId, reason)
          .then(
            () => 1,
            () => 0,
          ),
      ),
    );
    return done.reduce<number>((a, b) => a + b, 0);
  }

  /** Pushes to every session on every live gate; `properties` reach MQTT 5 clients only; `qos` as {@link sendToUser}. Resolves with how many got it. */
  async broadcast(topic: string, body: PushBody, properties?: Mqtt5PushProperties, qos?: PushQos): Promise<number> {
    checkQos('UserDirectory.broadcast', qos);
    const bytes = pushBytes(body);
    const counts = await Promise.all(
      this.gates().map(({ serverId }) =>
        this.gate(serverId)
          .broadcast(topic, bytes, properties, qos)
          .catch(() => 0),
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Session counts per live gate and in total (gates that do not answer are left out). */
  async counts(): Promise<{ total: SessionCounts; gates: Record<string, SessionCounts> }> {
    const gates: Record<string, SessionCounts> = {};
    const total: SessionCounts = { total: 0, bound: 0, guests: 0, detached: 0 };
    await Promise.all(
      this.gates().map(async ({ serverId }) => {
        try {
          const c = await this.gate(serverId).counts();
          gates[serverId] = c;
          total.total += c.total;
          total.bound += c.bound;
          total.guests += c.guests;
          total.detached = (total.detached ?? 0) + (c.detached ?? 0);
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

/**
 * Session ids by gate, each once: while a session goes from bound to detached (or back, at a
 * resume) the index may list it under both keys for a moment, and it must get one push, not two.
 */
function group(locations: UserLocation[]): Map<string, string[]> {
  const m = new Map<string, Set<string>>();
  for (const l of locations) {
    const set = m.get(l.serverId) ?? new Set<string>();
    set.add(l.sessionId);
    m.set(l.serverId, set);
  }
  return new Map([...m].map(([serverId, ids]) => [serverId, [...ids]]));
}
