import {
  GATE_MODULE_TYPE,
  SessionNotFoundError,
  makeSessionData,
  serveGateService,
  type GateService,
  type RpcHandler,
  type RpcServerHandle,
  type RpcTransport,
  type RpcValue,
  type SessionData,
} from '@mqgate/rpc';

export interface RecordedCall {
  fn: string;
  args: RpcValue[];
}

export interface Delivery {
  sessionId: string;
  topic: string;
  body: Uint8Array;
}

/** A call held by {@link FakeGate.pause}: `reached` resolves when the call arrives, `release` lets it answer. */
export interface Pause {
  reached: Promise<void>;
  release(): void;
}

/**
 * A recording stand-in for the gate's session service: a {@link GateService} over an
 * in-memory map of sessions, served on a real transport through the same adapter as the
 * gate's (`serveGateService`), recording each call as it arrived on the wire.
 */
export class FakeGate {
  readonly calls: RecordedCall[] = [];
  readonly deliveries: Delivery[] = [];
  private readonly sessions = new Map<string, SessionData>();
  private readonly pauses = new Map<string, { arrived: () => void; gate: Promise<void> }>();
  private deliveryWaiters: Array<(d: Delivery) => void> = [];
  private handle: RpcServerHandle | undefined;
  private nextId = 1;
  private readonly service: RpcHandler = serveGateService(this.asService());

  private constructor(
    readonly transport: RpcTransport,
    readonly serverId: string,
  ) {}

  static async start(transport: RpcTransport, serverId = 'gate@fake'): Promise<FakeGate> {
    const gate = new FakeGate(transport, serverId);
    gate.handle = await transport.serve({ serverId, moduleType: GATE_MODULE_TYPE }, (fn, args) => gate.handle_(fn, args));
    return gate;
  }

  async stop(): Promise<void> {
    await this.handle?.close();
  }

  /** Registers a connection and returns the copy the gate would forward with a request. */
  connect(fields: Partial<SessionData> = {}): SessionData {
    const sessionId = fields.sessionId ?? `sess${String(this.nextId++).padStart(12, '0')}`;
    const data = makeSessionData({ ip: '10.0.0.9', network: 'tcp', traceId: 'trace-1', ...fields, sessionId, serverId: this.serverId });
    this.sessions.set(sessionId, makeSessionData({ ...data, topic: '', settings: { ...data.settings } }));
    return makeSessionData({ ...data, settings: { ...data.settings } });
  }

  /** The gate's authoritative copy. */
  session(sessionId: string): SessionData | undefined {
    return this.sessions.get(sessionId);
  }

  /** Changes the gate's copy directly, as another module's write would. */
  patch(sessionId: string, fields: Partial<SessionData>): void {
    const cur = this.require(sessionId);
    this.sessions.set(sessionId, makeSessionData({ ...cur, ...fields }));
  }

  callsTo(fn: string): RecordedCall[] {
    return this.calls.filter((c) => c.fn === fn);
  }

  /** Holds the next call to `fn` until `release()`. */
  pause(fn: string): Pause {
    let arrived!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    const gate = new Promise<void>((r) => (release = r));
    this.pauses.set(fn, { arrived, gate });
    return { reached, release };
  }

  /** Resolves with the next message delivered to a client. */
  nextDelivery(): Promise<Delivery> {
    return new Promise((resolve) => this.deliveryWaiters.push(resolve));
  }

  private require(sessionId: unknown): SessionData {
    const s = typeof sessionId === 'string' ? this.sessions.get(sessionId) : undefined;
    if (!s) throw new SessionNotFoundError(String(sessionId));
    return s;
  }

  private store(s: SessionData, fields: Partial<SessionData>): SessionData {
    const next = makeSessionData({ ...s, ...fields });
    this.sessions.set(next.sessionId, next);
    return makeSessionData({ ...next, settings: { ...next.settings } });
  }

  private deliver(sessionId: string, topic: string, body: Uint8Array): void {
    const d = { sessionId, topic, body };
    this.deliveries.push(d);
    const waiters = this.deliveryWaiters;
    this.deliveryWaiters = [];
    for (const w of waiters) w(d);
  }

  private async handle_(fn: string, args: RpcValue[]): Promise<RpcValue | void> {
    this.calls.push({ fn, args });
    const p = this.pauses.get(fn);
    if (p) {
      this.pauses.delete(fn);
      p.arrived();
      await p.gate;
    }
    return this.service(fn, args, { fn, deadline: Date.now() + 10_000 });
  }

  private asService(): GateService {
    return {
      update: async (sid) => this.store(this.require(sid), {}),
      bind: async (sid, userId) => this.store(this.require(sid), { userId }),
      unbind: async (sid) => this.store(this.require(sid), { userId: '' }),
      push: async (sid, map) => {
        const s = this.require(sid);
        return this.store(s, { settings: { ...s.settings, ...map } });
      },
      set: async (sid, key, value) => {
        const s = this.require(sid);
        return this.store(s, { settings: { ...s.settings, [key]: value } });
      },
      remove: async (sid, keys) => {
        const s = this.require(sid);
        const settings = { ...s.settings };
        for (const k of keys) delete settings[k];
        return this.store(s, { settings });
      },
      send: async (sid, topic, body) => {
        this.deliver(this.require(sid).sessionId, topic, body);
      },
      sendBatch: async (ids, topic, body) => {
        let n = 0;
        for (const id of ids) {
          if (this.sessions.has(id)) {
            this.deliver(id, topic, body);
            n++;
          }
        }
        return n;
      },
      broadcast: async (topic, body) => {
        for (const id of this.sessions.keys()) this.deliver(id, topic, body);
        return this.sessions.size;
      },
      isConnect: async (_sid, userId) => [...this.sessions.values()].some((s) => s.userId === userId),
      close: async (sid) => {
        this.require(sid);
        this.sessions.delete(sid);
      },
      counts: async () => ({ total: this.sessions.size, bound: 0, guests: this.sessions.size }),
      handOver: async (sid) => Promise.reject(new SessionNotFoundError(sid)),
    };
  }
}
