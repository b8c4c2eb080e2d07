import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import type { Mqtt5Request, SessionData, UserProperties } from './types';

export type { SessionData } from './types';

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
  declare protocolVersion: number;
  declare mqtt5: Mqtt5Request | undefined;
  declare carrier?: Readonly<Record<string, string>>;
  declare resume?: { tokenHash: Uint8Array; expiresAt: number };
  declare unknownFields?: Uint8Array;
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
  data.protocolVersion = fields.protocolVersion ?? 0;
  data.mqtt5 = fields.mqtt5;
  if (fields.carrier !== undefined) data.carrier = fields.carrier;
  if (fields.resume !== undefined) data.resume = fields.resume;
  if (fields.unknownFields !== undefined) data.unknownFields = fields.unknownFields;
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
  ProtocolVersion: number;
  Mqtt5: WireMqtt5;
  Carrier: Record<string, string>;
  ResumeTokenHash: Uint8Array;
  ResumeExpiresAt: number;
}

/** Highest field number of `sessionImp` in proto/session.proto; higher ones are kept raw. */
const LAST_KNOWN_FIELD = 14;

/** The raw bytes of the fields numbered above {@link LAST_KNOWN_FIELD}, or undefined when none. */
function unknownFieldsOf(view: Uint8Array): Uint8Array | undefined {
  const r = protobuf.Reader.create(view);
  let chunks: Uint8Array[] | undefined;
  while (r.pos < r.len) {
    const start = r.pos;
    const tag = r.uint32();
    r.skipType(tag & 7);
    if (tag >>> 3 > LAST_KNOWN_FIELD) (chunks ??= []).push(view.subarray(start, r.pos));
  }
  return chunks && Buffer.concat(chunks);
}

interface WireMqtt5 {
  UserProperties?: Array<{ Key?: string; Value?: string }>;
  ContentType?: string;
  CorrelationData?: Uint8Array;
}

function toWireMqtt5(m: Mqtt5Request): WireMqtt5 {
  const pairs: Array<{ Key: string; Value: string }> = [];
  for (const [Key, v] of Object.entries(m.userProperties ?? {})) {
    if (typeof v === 'string') pairs.push({ Key, Value: v });
    else for (const Value of v) pairs.push({ Key, Value });
  }
  return {
    UserProperties: pairs.length > 0 ? pairs : undefined,
    ContentType: m.contentType || undefined,
    CorrelationData: m.correlationData,
  };
}

function fromWireMqtt5(w: WireMqtt5): Mqtt5Request {
  const out: { userProperties?: UserProperties; contentType?: string; correlationData?: Uint8Array } = {};
  if (w.UserProperties && w.UserProperties.length > 0)
    out.userProperties = collectUserProperties(w.UserProperties.map((p) => [p.Key ?? '', p.Value ?? '']));
  if (w.ContentType) out.contentType = w.ContentType;
  if (w.CorrelationData && w.CorrelationData.length > 0) out.correlationData = Buffer.from(w.CorrelationData);
  return out;
}

/** (name, value) pairs → {@link UserProperties}: a name seen twice gets a list, in order. */
export function collectUserProperties(pairs: Iterable<readonly [string, string]>): UserProperties {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [k, v] of pairs) {
    const had = out[k];
    if (had === undefined) out[k] = v;
    else if (typeof had === 'string') out[k] = [had, v];
    else had.push(v);
  }
  return { ...out };
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
    ProtocolVersion: s.protocolVersion || undefined,
    Mqtt5: s.mqtt5 ? toWireMqtt5(s.mqtt5) : undefined,
    Carrier: s.carrier as Record<string, string> | undefined,
    ResumeTokenHash: s.resume?.tokenHash,
    ResumeExpiresAt: s.resume?.expiresAt,
  };
  const bytes = type().encode(wire).finish();
  return s.unknownFields && s.unknownFields.length > 0 ? Buffer.concat([bytes, s.unknownFields]) : bytes;
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
  const carrier = m.Carrier && Object.keys(m.Carrier).length > 0 ? { ...m.Carrier } : undefined;
  const resume =
    m.ResumeTokenHash && m.ResumeTokenHash.length > 0 ? { tokenHash: Buffer.from(m.ResumeTokenHash), expiresAt: m.ResumeExpiresAt ?? 0 } : undefined;
  return makeSessionData({
    carrier,
    resume,
    unknownFields: unknownFieldsOf(view),
    ip: m.IP ?? '',
    network: m.Network ?? '',
    userId: m.UserId ?? '',
    sessionId: m.SessionId ?? '',
    serverId: m.ServerId ?? '',
    traceId: m.TraceId ?? '',
    spanId: m.SpanId ?? '',
    settings: { ...(m.Settings ?? {}) },
    topic: m.Topic ?? '',
    protocolVersion: m.ProtocolVersion ?? 0,
    mqtt5: m.Mqtt5 ? fromWireMqtt5(m.Mqtt5) : undefined,
  });
}
