import { join } from 'node:path';
import * as protobuf from 'protobufjs';

/**
 * The Session as it travels between the gate and modules: mqant's `SessionImp`
 * (proto/session.proto, package `basegate`). Plain data, no behaviour.
 *
 * `settings` is treated as immutable by everyone who holds it: a change makes a new
 * object. That lets the gate hand the same map to many in-flight requests without copying.
 */
export interface SessionData {
  /** Client address without port (mqant field 1 `IP`). */
  ip: string;
  /** `"tcp"` or `"websocket"` (field 2 `Network`). */
  network: string;
  /** `""` until Bind (field 3 `UserId`). */
  userId: string;
  /** Random, unguessable, new on every connection (field 4 `SessionId`). */
  sessionId: string;
  /** Node id of the owning gate, e.g. `"gate@3f9c..."` (field 5 `ServerId`). */
  serverId: string;
  /** Created once per connection (field 6 `TraceId`). */
  traceId: string;
  /** New on every request (field 7 `SpanId`). */
  spanId: string;
  /** User settings, string to string (field 8 `Settings`). */
  settings: Readonly<Record<string, string>>;
  /** Topic of the request being handled, `""` outside a request (field 10 `Topic`). */
  topic: string;
}

const SESSION_TAG = Symbol.for('mqgate.SessionData');

/** Carries the tag on its prototype, so tagging costs nothing per session. */
class TaggedSession implements SessionData {
  declare ip: string;
  declare network: string;
  declare userId: string;
  declare sessionId: string;
  declare serverId: string;
  declare traceId: string;
  declare spanId: string;
  declare settings: Readonly<Record<string, string>>;
  declare topic: string;
}
Object.defineProperty(TaggedSession.prototype, SESSION_TAG, { value: true, enumerable: false });

/**
 * Builds a SessionData with every field present; missing fields default to `""` / `{}`.
 * The result is tagged so transports can tell a session argument from a JSON object
 * (see {@link isSessionData}).
 */
export function makeSessionData(fields: Partial<SessionData>): SessionData {
  const data = new TaggedSession();
  data.ip = fields.ip ?? '';
  data.network = fields.network ?? '';
  data.userId = fields.userId ?? '';
  data.sessionId = fields.sessionId ?? '';
  data.serverId = fields.serverId ?? '';
  data.traceId = fields.traceId ?? '';
  data.spanId = fields.spanId ?? '';
  data.settings = fields.settings ?? {};
  data.topic = fields.topic ?? '';
  return data;
}

/** True for objects made by {@link makeSessionData} or {@link decodeSession}. */
export function isSessionData(value: unknown): value is SessionData {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[SESSION_TAG] === true;
}

/** Directory holding the .proto files; the same relative path works from src/ and dist/. */
export const PROTO_DIR = join(__dirname, '..', 'proto');

let sessionType: protobuf.Type | undefined;
function type(): protobuf.Type {
  if (!sessionType) {
    const root = protobuf.loadSync(join(PROTO_DIR, 'session.proto'));
    sessionType = root.lookupType('basegate.sessionImp');
  }
  return sessionType;
}

interface WireSession {
  IP: string;
  Network: string;
  UserId: string;
  SessionId: string;
  ServerId: string;
  TraceId: string;
  SpanId: string;
  Settings: Record<string, string>;
  Topic: string;
}

/**
 * Encodes a session as mqant `SessionImp` protobuf bytes. Empty strings are left out, as
 * proto3 (and Go's `proto.Marshal`) does: protobufjs would otherwise write them as
 * zero-length fields, and the bytes would differ from a Go mqant gate's.
 */
export function encodeSession(s: SessionData): Uint8Array {
  const wire: Partial<WireSession> = {
    IP: s.ip || undefined,
    Network: s.network || undefined,
    UserId: s.userId || undefined,
    SessionId: s.sessionId || undefined,
    ServerId: s.serverId || undefined,
    TraceId: s.traceId || undefined,
    SpanId: s.spanId || undefined,
    Settings: s.settings as Record<string, string>,
    Topic: s.topic || undefined,
  };
  return type().encode(wire).finish();
}

/**
 * Decodes mqant `SessionImp` protobuf bytes (from this package or a Go mqant gate).
 * @throws Error when the bytes are not a valid SessionImp message.
 */
export function decodeSession(bytes: Uint8Array): SessionData {
  // A plain Uint8Array view (no copy): protobufjs's reader for Buffers clamps a string
  // whose length runs past the end instead of throwing, so truncated bytes would decode.
  const view = Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
  const m = type().decode(view) as unknown as Partial<WireSession>;
  return makeSessionData({
    ip: m.IP ?? '',
    network: m.Network ?? '',
    userId: m.UserId ?? '',
    sessionId: m.SessionId ?? '',
    serverId: m.ServerId ?? '',
    traceId: m.TraceId ?? '',
    spanId: m.SpanId ?? '',
    settings: { ...(m.Settings ?? {}) },
    topic: m.Topic ?? '',
  });
}
