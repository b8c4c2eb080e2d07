// Over 400 lines on purpose: the one typed contract of the gate's session service and the one
// codec of every verb, side by side, so that adding a verb is one line here and one in the gate.
import { BadArgumentError, BadReplyError, FunctionNotFoundError, describeValue } from './errors';
import { quoteInput } from './input-echo';
import { GateFunctions, type GateFunction } from './gate-api';
import { checkPushProperties, type Mqtt5PushProperties } from './mqtt5';
import { isSessionData, decodeSession, type SessionData } from './session-data';
import type { CallOptions, RpcHandler, RpcTransport, RpcValue } from './transport';

/** Session counts of one gate (`Counts`, `gate.counts()`). */
export interface SessionCounts {
  /** Every connected session (CONNACK sent, not yet closed). */
  total: number;
  /** Sessions bound to a user id. */
  bound: number;
  /** Sessions not bound (guests by the default rule). */
  guests: number;
  /**
   * Bound sessions whose connection dropped, kept for a resume (not counted in `total`).
   * Absent in the answer of a gate older than resume (read it as 0).
   */
  detached?: number;
}

/** One push kept for a detached session: what the client gets on resume, in order. */
export interface BufferedPush {
  topic: string;
  body: Uint8Array;
  properties?: Mqtt5PushProperties;
  /** 1 for a QoS 1 push (QoS 1 pushes are delivered at least once); absent = QoS 0. */
  qos?: 1;
  /**
   * The packet identifier of a QoS 1 push that was written and not acknowledged: resent
   * with DUP 1 under this identifier (MQTT-4.4.0-1). Absent for one never written.
   */
  messageId?: number;
}

/**
 * QoS of a push (`Send`, `SendBatch`, `BroadCast`): 0, the default, at most once (as mqant);
 * 1, at least once: the gate keeps it until the client's PUBACK and resends it on resume
 * (QoS 1 pushes are delivered at least once).
 */
export type PushQos = 0 | 1;

/**
 * Checks the `qos` of a push verb: undefined (QoS 0), 0 or 1.
 * @throws TypeError `<where>: qos must be 0 or 1, got <qos>` otherwise.
 */
export function checkQos(where: string, qos: unknown): void {
  if (qos !== undefined && qos !== 0 && qos !== 1) throw new TypeError(`${where}: qos must be 0 or 1, got ${String(qos)}`);
}

/**
 * What a gate hands over of a detached session (`handOver`): enough for another gate to
 * re-create it under the same session id.
 */
export interface HandedOverSession {
  userId: string;
  traceId: string;
  settings: Record<string, string>;
  /** The pushes buffered while detached, oldest first. */
  pushes: BufferedPush[];
  /** Pushes dropped from the buffer (past resumeBufferMessages / resumeBufferBytes). */
  lost: number;
  /** SHA-256 of the token that was presented (the one the owner held). */
  tokenHash: Uint8Array;
}

/**
 * The gate's session service: what a gate serves at its own server id
 * (`SessionData.serverId`) for modules to change and push to its sessions. Names and
 * argument orders follow mqant (gate/base/mqtt_gate.go OnInit, gate_handler.go) without
 * mqant's leading trace-span argument; each method is one wire function (`fn` in
 * {@link GATE_VERBS}). Every method rejects with an RpcError: `NO_SESSION` for a session id
 * the gate does not hold, `BAD_ARGUMENT` for an argument of the wrong shape (naming the verb
 * and the argument), `STORAGE` when a change is live but could not be stored (the gate
 * retries the write), or the transport's `NO_SERVER` / `DEADLINE` / `CLOSED`.
 *
 * Differences from mqant, on purpose: `push` only ever carries the keys that changed (the
 * client never resends the whole map, so it cannot overwrite another module's newer
 * value); `remove` accepts several keys; `isConnect` answers `false` instead of an error
 * and asks every live gate (through the user index); `close` carries a reason that the
 * client receives on `gate/kick` first; `unbind` with `deleteStored` also deletes what the
 * gate's StorageHandler holds for the user (an explicit logout).
 */
export interface GateService {
  /** The gate's current copy of the session (wire `Update(sessionId)`). */
  update(sessionId: string): Promise<SessionData>;
  /** Binds the session to a user id, merging stored settings in (wire `Bind(sessionId, userId)`). @throws DUPLICATE_LOGIN, USER_INDEX, STORAGE too. */
  bind(sessionId: string, userId: string): Promise<SessionData>;
  /** Clears the user id; `deleteStored` deletes the stored session too (wire `UnBind(sessionId, delete)`). */
  unbind(sessionId: string, deleteStored: boolean): Promise<SessionData>;
  /** Sets exactly these keys (wire `Push(sessionId, {key: value})`). */
  push(sessionId: string, settings: Readonly<Record<string, string>>): Promise<SessionData>;
  /** Sets one key (wire `Set(sessionId, key, value)`). */
  set(sessionId: string, key: string, value: string): Promise<SessionData>;
  /** Removes keys (wire `Remove(sessionId, key | keys[])`: one key travels as a string). */
  remove(sessionId: string, keys: readonly string[]): Promise<SessionData>;
  /**
   * Pushes a PUBLISH to the session (wire `Send(sessionId, topic, body[, properties[, qos]])`);
   * `properties` reach an MQTT 5 client only, `qos` 1 delivers at least once ({@link PushQos});
   * both are extra positional arguments mqant's gate ignores (`properties` null when only `qos` is given).
   * @throws NO_SESSION once the connection is closing; BAD_ARGUMENT when the push exceeds the MQTT 5 client's
   *   Maximum Packet Size, or `qos` is not 0 or 1; LIMIT when a QoS 1 push finds maxOutboundQueue or maxBufferedBytes full.
   */
  send(sessionId: string, topic: string, body: Uint8Array, properties?: Mqtt5PushProperties, qos?: PushQos): Promise<void>;
  /** Pushes to several sessions of the gate; resolves with how many got it (wire `SendBatch("id1,id2", topic, body[, properties[, qos]])`). */
  sendBatch(sessionIds: readonly string[], topic: string, body: Uint8Array, properties?: Mqtt5PushProperties, qos?: PushQos): Promise<number>;
  /** Pushes to every session of the gate; resolves with how many got it (wire `BroadCast(topic, body[, properties[, qos]])`). */
  broadcast(topic: string, body: Uint8Array, properties?: Mqtt5PushProperties, qos?: PushQos): Promise<number>;
  /**
   * True when the user has a bound session on any live gate (wire `IsConnect(sessionId, userId)`).
   * `sessionId` is the asking session, mqant's positional argument; the gate ignores it.
   */
  isConnect(sessionId: string, userId: string): Promise<boolean>;
  /** Closes the connection; with a reason the client first gets it on `gate/kick` (wire `Close(sessionId, reason?)`). */
  close(sessionId: string, reason?: string): Promise<void>;
  /** Session counts of this gate (wire `Counts()`). */
  counts(): Promise<SessionCounts>;
  /**
   * mqgate's own: releases the detached session `sessionId`, whose resume token
   * hashes (SHA-256) to `tokenHash`, and returns it, atomically: of two calls with the same
   * token exactly one gets it (wire `HandOver(sessionId, tokenHash)`). A session still
   * attached is taken over (its connection closed). For a resume at CONNECT (Clean Session 0 / Clean Start 0 resumes the user's detached session)
   * `tokenHash` is instead the gate's connect proof of the user and client id
   * (gate/src/resume/token.ts connectProof), matched by detached sessions only; the result's
   * `tokenHash` is then the session's own. @throws NO_SESSION when the session is unknown,
   * expired or the hash does not match (nothing changes).
   */
  handOver(sessionId: string, tokenHash: Uint8Array): Promise<HandedOverSession>;
}

/** A verb of the gate's session service. */
export type GateVerb = keyof GateService;

type Args<K extends GateVerb> = Parameters<GateService[K]>;
type Result<K extends GateVerb> = Awaited<ReturnType<GateService[K]>>;

/** The one codec of a verb: its wire function name, its argument encoder and decoder, its result decoder. */
interface VerbCodec<K extends GateVerb> {
  readonly fn: GateFunction;
  /** Typed arguments → the positional wire arguments. */
  encode(args: Args<K>): RpcValue[];
  /** Positional wire arguments → typed arguments. @throws BadArgumentError */
  decode(args: RpcValue[]): Args<K>;
  /** A wire result → the typed result. @throws BadReplyError */
  result(value: RpcValue): Result<K>;
  /** The typed result → the wire result, when it is not already an RpcValue (default: as is, `undefined` as `null`). */
  reply?(value: Result<K>): RpcValue;
}

// ---- argument decoders (the gate's side) ------------------------------------------------

function str(fn: string, args: RpcValue[], i: number, name: string, allowEmpty = false): string {
  const v = args[i];
  if (typeof v !== 'string' || (!allowEmpty && v === '')) {
    throw new BadArgumentError(fn, `argument ${i} (${name}) must be a non-empty string`);
  }
  return v;
}

function topic(fn: string, args: RpcValue[], i: number): string {
  const t = str(fn, args, i, 'topic');
  if (t.includes('+') || t.includes('#')) throw new BadArgumentError(fn, `topic ${quoteInput(t)} must not hold a wildcard`);
  return t;
}

/** A push body: bytes as they are, a string as UTF-8, anything else as JSON (what mqant callers send). */
function body(fn: string, args: RpcValue[], i: number): Uint8Array {
  const v = args[i];
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v === undefined) throw new BadArgumentError(fn, `argument ${i} (body) is missing`);
  return Buffer.from(JSON.stringify(v));
}

function settings(fn: string, args: RpcValue[], i: number): Record<string, string> {
  const v = args[i];
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    throw new BadArgumentError(fn, `argument ${i} (settings) must be an object of strings`);
  }
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw new BadArgumentError(fn, `setting ${quoteInput(k)} must be a string, got ${typeof val}`);
  }
  return v as Record<string, string>;
}

function keys(fn: string, args: RpcValue[], i: number): string[] {
  const v = args[i];
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0 || list.some((k) => typeof k !== 'string' || k === '')) {
    throw new BadArgumentError(fn, `argument ${i} (key) must be a non-empty string or a list of them`);
  }
  return list as string[];
}

function optional<T>(fn: string, args: RpcValue[], i: number, name: string, kind: 'string' | 'boolean'): T | undefined {
  const v = args[i];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== kind) throw new BadArgumentError(fn, `argument ${i} (${name}) must be a ${kind}`);
  return v as T;
}

/** Optional MQTT 5 push properties (the last argument of Send / SendBatch / BroadCast). */
function pushProps(fn: string, args: RpcValue[], i: number): Mqtt5PushProperties | undefined {
  try {
    return checkPushProperties(`argument ${i} (properties)`, args[i]);
  } catch (err) {
    throw new BadArgumentError(fn, (err as Error).message);
  }
}

/** The optional QoS of a push (after the properties): absent or null = undefined (QoS 0); else 0 or 1. */
function pushQos(fn: string, args: RpcValue[], i: number): PushQos | undefined {
  const v = args[i];
  if (v === undefined || v === null) return undefined;
  if (v === 0 || v === 1) return v;
  throw new BadArgumentError(fn, `argument ${i} (qos) must be 0 or 1, got ${describeValue(v)}`);
}

/**
 * Appends the push properties and a QoS of 1 to wire arguments when given (mqant callers
 * never send them; QoS 0 is sent as nothing, so an old gate sees the call it knows).
 */
function withProps(args: RpcValue[], props: Mqtt5PushProperties | undefined, qos?: PushQos): RpcValue[] {
  if (props !== undefined || qos === 1) args.push((props ?? null) as RpcValue);
  if (qos === 1) args.push(1);
  return args;
}

/** SendBatch ids: mqant's comma-separated string, or a list. */
function ids(fn: string, args: RpcValue[], i: number): string[] {
  const v = args[i];
  const list = Array.isArray(v) ? v : str(fn, args, i, 'sessionIds', true).split(',');
  return list.filter((id): id is string => typeof id === 'string').map((id) => id.trim());
}

// ---- result decoders (the caller's side) ------------------------------------------------

function session(value: RpcValue): SessionData {
  if (isSessionData(value)) return value;
  if (value instanceof Uint8Array) {
    try {
      return decodeSession(value);
    } catch {
      // fall through
    }
  }
  throw new BadReplyError(`expected the session, got ${describeValue(value)}`);
}

function count(value: RpcValue): number {
  if (typeof value !== 'number') throw new BadReplyError(`expected a number, got ${describeValue(value)}`);
  return value;
}

function flag(value: RpcValue): boolean {
  if (typeof value !== 'boolean') throw new BadReplyError(`expected a boolean, got ${describeValue(value)}`);
  return value;
}

function nothing(): void {
  return undefined;
}

function counts(value: RpcValue): SessionCounts {
  const c = value as Partial<SessionCounts> | null;
  if (typeof c !== 'object' || c === null || typeof c.total !== 'number' || typeof c.bound !== 'number' || typeof c.guests !== 'number') {
    throw new BadReplyError(`expected {total, bound, guests}, got ${describeValue(value)}`);
  }
  if (c.detached !== undefined && typeof c.detached !== 'number')
    throw new BadReplyError(`expected a number of detached sessions, got ${describeValue(c.detached)}`);
  return c as SessionCounts;
}

function bytes(fn: string, args: RpcValue[], i: number, name: string): Uint8Array {
  const v = args[i];
  if (!(v instanceof Uint8Array) || v.length === 0) throw new BadArgumentError(fn, `argument ${i} (${name}) must be bytes`);
  return v;
}

/**
 * A hand-over travels as a list (bytes survive only in lists, see rpc-codec):
 * `[userId, traceId, settings, lost, tokenHash, [[topic, body, properties | null(, 1, messageId | 0)], ...]]`;
 * a QoS 1 push carries two more elements, which a gate older than QoS 1 ignores.
 */
function encodeHandOver(h: HandedOverSession): RpcValue {
  const pushes: RpcValue[] = h.pushes.map((p) => {
    const item: RpcValue[] = [p.topic, p.body, (p.properties ?? null) as RpcValue];
    if (p.qos === 1) item.push(1, p.messageId ?? 0);
    return item;
  });
  return [h.userId, h.traceId, h.settings, h.lost, h.tokenHash, pushes];
}

function handOverResult(value: RpcValue): HandedOverSession {
  const bad = (): never => {
    throw new BadReplyError(`expected a handed-over session, got ${describeValue(value)}`);
  };
  if (!Array.isArray(value) || value.length !== 6) return bad();
  const [userId, traceId, map, lost, hash, list] = value;
  if (typeof userId !== 'string' || typeof traceId !== 'string' || typeof lost !== 'number' || !(hash instanceof Uint8Array) || !Array.isArray(list))
    return bad();
  if (map === null || typeof map !== 'object' || Array.isArray(map) || map instanceof Uint8Array) return bad();
  const pushes: BufferedPush[] = list.map((p) => {
    if (!Array.isArray(p) || typeof p[0] !== 'string' || !(p[1] instanceof Uint8Array)) return bad();
    const props = p[2];
    const push: BufferedPush =
      props === null || props === undefined ? { topic: p[0], body: p[1] } : { topic: p[0], body: p[1], properties: props as Mqtt5PushProperties };
    if (p[3] === 1) push.qos = 1;
    if (p[3] === 1 && typeof p[4] === 'number' && Number.isInteger(p[4]) && p[4] >= 1 && p[4] <= 0xffff) push.messageId = p[4];
    return push;
  });
  return { userId, traceId, settings: map as Record<string, string>, lost, tokenHash: hash, pushes };
}

const F = GateFunctions;

/**
 * The one encoder and decoder of every verb. Adding a verb: a line in {@link GateService},
 * an entry here (the compiler asks for it), and the gate's implementation (the compiler asks
 * for that too).
 */
export const GATE_VERBS: { readonly [K in GateVerb]: VerbCodec<K> } = {
  update: {
    fn: F.Update,
    encode: ([sid]) => [sid],
    decode: (a) => [str(F.Update, a, 0, 'sessionId')],
    result: session,
  },
  bind: {
    fn: F.Bind,
    encode: ([sid, userId]) => [sid, userId],
    decode: (a) => [str(F.Bind, a, 0, 'sessionId'), str(F.Bind, a, 1, 'userId')],
    result: session,
  },
  unbind: {
    fn: F.UnBind,
    encode: ([sid, del]) => [sid, del],
    decode: (a) => [str(F.UnBind, a, 0, 'sessionId'), optional<boolean>(F.UnBind, a, 1, 'delete', 'boolean') === true],
    result: session,
  },
  push: {
    fn: F.Push,
    encode: ([sid, map]) => [sid, map as Record<string, string>],
    decode: (a) => [str(F.Push, a, 0, 'sessionId'), settings(F.Push, a, 1)],
    result: session,
  },
  set: {
    fn: F.Set,
    encode: ([sid, key, value]) => [sid, key, value],
    decode: (a) => [str(F.Set, a, 0, 'sessionId'), str(F.Set, a, 1, 'key'), str(F.Set, a, 2, 'value', true)],
    result: session,
  },
  remove: {
    fn: F.Remove,
    encode: ([sid, list]) => [sid, list.length === 1 ? list[0] : [...list]],
    decode: (a) => [str(F.Remove, a, 0, 'sessionId'), keys(F.Remove, a, 1)],
    result: session,
  },
  send: {
    fn: F.Send,
    encode: ([sid, t, b, p, q]) => withProps([sid, t, b], p, q),
    decode: (a) => [str(F.Send, a, 0, 'sessionId'), topic(F.Send, a, 1), body(F.Send, a, 2), pushProps(F.Send, a, 3), pushQos(F.Send, a, 4)],
    result: nothing,
  },
  sendBatch: {
    fn: F.SendBatch,
    encode: ([list, t, b, p, q]) => withProps([list.join(','), t, b], p, q),
    decode: (a) => [
      ids(F.SendBatch, a, 0),
      topic(F.SendBatch, a, 1),
      body(F.SendBatch, a, 2),
      pushProps(F.SendBatch, a, 3),
      pushQos(F.SendBatch, a, 4),
    ],
    result: count,
  },
  broadcast: {
    fn: F.BroadCast,
    encode: ([t, b, p, q]) => withProps([t, b], p, q),
    decode: (a) => [topic(F.BroadCast, a, 0), body(F.BroadCast, a, 1), pushProps(F.BroadCast, a, 2), pushQos(F.BroadCast, a, 3)],
    result: count,
  },
  isConnect: {
    fn: F.IsConnect,
    encode: ([sid, userId]) => [sid, userId],
    decode: (a) => [typeof a[0] === 'string' ? a[0] : '', str(F.IsConnect, a, 1, 'userId')],
    result: flag,
  },
  close: {
    fn: F.Close,
    encode: ([sid, reason]) => (reason === undefined ? [sid] : [sid, reason]),
    decode: (a) => [str(F.Close, a, 0, 'sessionId'), optional<string>(F.Close, a, 1, 'reason', 'string')],
    result: nothing,
  },
  counts: {
    fn: F.Counts,
    encode: () => [],
    decode: () => [],
    result: counts,
  },
  handOver: {
    fn: F.HandOver,
    encode: ([sid, hash]) => [sid, hash],
    decode: (a) => [str(F.HandOver, a, 0, 'sessionId'), bytes(F.HandOver, a, 1, 'tokenHash')],
    result: handOverResult,
    reply: encodeHandOver,
  },
};

const VERB_OF_FN = new Map<string, GateVerb>(Object.entries(GATE_VERBS).map(([verb, c]) => [c.fn, verb as GateVerb]));

/**
 * The server adapter: serves a {@link GateService} as an RpcHandler (the gate passes this to
 * `transport.serve`). Decodes and checks every argument before the service runs, so a bad
 * call fails with `BAD_ARGUMENT` and changes nothing; an unknown function fails with
 * `NOT_FOUND`. Results travel as RpcValues (`undefined` as `null`).
 */
export function serveGateService(service: GateService): RpcHandler {
  return (fn, args) => {
    const verb = VERB_OF_FN.get(fn);
    if (verb === undefined) throw new FunctionNotFoundError("the gate's session service", fn);
    const codec = GATE_VERBS[verb] as VerbCodec<GateVerb>;
    const run = service[verb] as (...a: unknown[]) => Promise<unknown>;
    const reply = codec.reply;
    return run.apply(service, codec.decode(args) as unknown[]).then(reply ? (v) => reply(v as never) : toRpcResult);
  };
}

function toRpcResult(value: unknown): RpcValue {
  return value === undefined ? null : (value as RpcValue);
}

/** The client stub of a gate: every {@link GateService} verb, plus `sendNR`. */
export interface GateClient extends GateService {
  /** The gate called. */
  readonly serverId: string;
  /** Fire and forget `Send` (mqant SendNR): resolves once handed to the transport; rejects only when no server matches. */
  sendNR(sessionId: string, topic: string, body: Uint8Array, properties?: Mqtt5PushProperties, qos?: PushQos): Promise<void>;
}

class GateClientStub {
  constructor(
    readonly transport: RpcTransport,
    readonly serverId: string,
    readonly callOptions: CallOptions | undefined,
  ) {}

  sendNR(sessionId: string, t: string, b: Uint8Array, p?: Mqtt5PushProperties, q?: PushQos): Promise<void> {
    return this.transport.callNR({ serverId: this.serverId }, F.Send, GATE_VERBS.send.encode([sessionId, t, b, p, q]));
  }
}
for (const verb of Object.keys(GATE_VERBS) as GateVerb[]) {
  const codec = GATE_VERBS[verb] as VerbCodec<GateVerb>;
  Object.defineProperty(GateClientStub.prototype, verb, {
    value(this: GateClientStub, ...args: unknown[]): Promise<unknown> {
      return this.transport.call({ serverId: this.serverId }, codec.fn, codec.encode(args as never), this.callOptions).then((r) => codec.result(r));
    },
  });
}

/**
 * The client stub: calls the session service of the gate `serverId` over `transport`,
 * encoding each verb's arguments and checking its result (a result of the wrong shape
 * rejects with `BAD_REPLY`). Cheap to make (one small object), so one per call site is fine.
 * @param options.timeout ms each call waits; default the transport's `defaultTimeout` (10 000).
 */
export function gateClient(transport: RpcTransport, serverId: string, options: CallOptions = {}): GateClient {
  return new GateClientStub(transport, serverId, options.timeout === undefined ? undefined : options) as unknown as GateClient;
}
