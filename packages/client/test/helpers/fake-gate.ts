import {
  FunctionNotFoundError,
  GATE_MODULE_TYPE,
  GateFunctions,
  SessionNotFoundError,
  makeSessionData,
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
 * A recording stand-in for the gate's session service: the gate functions of
 * `GateFunctions` over an in-memory map of sessions, served on a real transport.
 */
export class FakeGate {
  readonly calls: RecordedCall[] = [];
  readonly deliveries: Delivery[] = [];
  private readonly sessions = new Map<string, SessionData>();
  private readonly pauses = new Map<string, { arrived: () => void; gate: Promise<void> }>();
  private deliveryWaiters: Array<(d: Delivery) => void> = [];
  private handle: RpcServerHandle | undefined;
  private nextId = 1;

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

  private async handle_(fn: string, args: RpcValue[]): Promise<RpcValue> {
    this.calls.push({ fn, args });
    const p = this.pauses.get(fn);
    if (p) {
      this.pauses.delete(fn);
      p.arrived();
      await p.gate;
    }
    switch (fn) {
      case GateFunctions.Update:
        return this.store(this.require(args[0]), {});
      case GateFunctions.Bind:
        return this.store(this.require(args[0]), { userId: args[1] as string });
      case GateFunctions.UnBind:
        return this.store(this.require(args[0]), { userId: '' });
      case GateFunctions.Push: {
        const s = this.require(args[0]);
        return this.store(s, { settings: { ...s.settings, ...(args[1] as Record<string, string>) } });
      }
      case GateFunctions.Set: {
        const s = this.require(args[0]);
        return this.store(s, { settings: { ...s.settings, [args[1] as string]: args[2] as string } });
      }
      case GateFunctions.Remove: {
        const s = this.require(args[0]);
        const keys = Array.isArray(args[1]) ? (args[1] as string[]) : [args[1] as string];
        const settings = { ...s.settings };
        for (const k of keys) delete settings[k];
        return this.store(s, { settings });
      }
      case GateFunctions.Send: {
        const s = this.require(args[0]);
        this.deliver(s.sessionId, args[1] as string, args[2] as Uint8Array);
        return null;
      }
      case GateFunctions.SendBatch: {
        let n = 0;
        for (const id of (args[0] as string).split(',')) {
          if (this.sessions.has(id)) {
            this.deliver(id, args[1] as string, args[2] as Uint8Array);
            n++;
          }
        }
        return n;
      }
      case GateFunctions.BroadCast: {
        for (const id of this.sessions.keys()) this.deliver(id, args[0] as string, args[1] as Uint8Array);
        return this.sessions.size;
      }
      case GateFunctions.IsConnect:
        return [...this.sessions.values()].some((s) => s.userId === args[1]);
      case GateFunctions.Close:
        this.require(args[0]);
        this.sessions.delete(args[0] as string);
        return null;
      default:
        throw new FunctionNotFoundError(this.serverId, fn);
    }
  }
}
