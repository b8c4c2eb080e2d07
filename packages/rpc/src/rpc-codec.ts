import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import { RpcError, type WireError } from './errors';
import { decodeSession, encodeSession, isSessionData, PROTO_DIR } from './session-data';
import type { RpcValue } from './transport';

/**
 * Codecs of the RedisTransport envelopes (proto/rpc.proto, package `mqgate.rpc`): a
 * request travels on a Redis list, a response on the caller's Pub/Sub reply channel.
 *
 * Values keep their type across the wire: `null`/`undefined` → null, booleans, numbers
 * (doubles, NaN and ±Infinity included), strings, bytes (any `Uint8Array`/`Buffer`/other
 * ArrayBuffer view, which arrives as a `Buffer`), a SessionData ({@link isSessionData}, sent
 * as mqant `SessionImp` bytes, arriving as a SessionData), arrays holding bytes or sessions
 * (directly or in nested arrays) as a list of typed values, and any other object or array as
 * JSON. Inside JSON only JSON types survive: bytes or a SessionData inside a plain object,
 * `undefined` or NaN inside JSON arrive as JSON makes them (`{"type":"Buffer","data":[…]}`, a
 * plain object, left out / `null`).
 */

/** A request as the transport handles it. */
export interface RpcRequest {
  /** Per caller, echoed in the response. 0 for fire-and-forget. */
  id: number;
  fn: string;
  args: RpcValue[];
  /** Reply channel; `''` for fire-and-forget. */
  replyTo: string;
  /** Absolute deadline, epoch ms. */
  deadline: number;
  /** Id of the calling transport (diagnostics). */
  caller: string;
}

/** A response: either `error` (with its code) or `result`. */
export interface RpcResponse {
  id: number;
  error?: WireError;
  result?: RpcValue;
}

/** Thrown by the encoders for a value that cannot cross the wire; code `ENCODE`. */
export class EncodeError extends RpcError {
  constructor(message: string) {
    super(message, 'ENCODE');
  }
}

/** A value as protobufjs sees it (`mqgate.rpc.Value`): exactly one member set. */
export interface WireValue {
  nullValue?: boolean;
  boolValue?: boolean;
  numberValue?: number;
  stringValue?: string;
  bytesValue?: Uint8Array;
  sessionValue?: Uint8Array;
  jsonValue?: string;
  listValue?: { values: WireValue[] };
}

interface WireRequest {
  id: number;
  fn: string;
  args: WireValue[];
  replyTo: string;
  deadline: number;
  caller: string;
}

interface WireResponse {
  id: number;
  error?: string;
  errorCode?: string;
  result?: WireValue;
}

interface Types {
  request: protobuf.Type;
  response: protobuf.Type;
}
let types: Types | undefined;
function load(): Types {
  if (!types) {
    const root = protobuf.loadSync(join(PROTO_DIR, 'rpc.proto'));
    types = { request: root.lookupType('mqgate.rpc.Request'), response: root.lookupType('mqgate.rpc.Response') };
  }
  return types;
}

/**
 * One value in its wire form.
 * @throws EncodeError for a bigint, function or symbol, or an object JSON cannot encode (a cycle).
 */
export function toWireValue(v: unknown): WireValue {
  switch (typeof v) {
    case 'undefined':
      return { nullValue: true };
    case 'boolean':
      return { boolValue: v };
    case 'number':
      return { numberValue: v };
    case 'string':
      return { stringValue: v };
    case 'object': {
      if (v === null) return { nullValue: true };
      if (v instanceof Uint8Array) return { bytesValue: v };
      if (ArrayBuffer.isView(v)) return { bytesValue: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
      if (isSessionData(v)) return { sessionValue: encodeSession(v) };
      if (Array.isArray(v) && holdsBinary(v, 0)) return { listValue: { values: v.map(toWireValue) } };
      let json: string | undefined;
      try {
        json = JSON.stringify(v);
      } catch (err) {
        throw new EncodeError(`cannot encode value as JSON: ${err instanceof Error ? err.message : String(err)}`);
      }
      // JSON.stringify gives undefined when toJSON() returns undefined.
      return json === undefined ? { nullValue: true } : { jsonValue: json };
    }
    default:
      throw new EncodeError(`cannot encode a value of type ${typeof v}`);
  }
}

/**
 * A value from its wire form (a decoded protobufjs message: exactly one member is its own).
 * @throws Error when JSON or session bytes are malformed.
 */
export function fromWireValue(w: WireValue | null | undefined): RpcValue {
  if (!w) return null;
  const own = (k: keyof WireValue) => Object.prototype.hasOwnProperty.call(w, k);
  if (own('stringValue')) return w.stringValue as string;
  if (own('numberValue')) return w.numberValue as number;
  if (own('boolValue')) return w.boolValue as boolean;
  if (own('jsonValue')) return JSON.parse(w.jsonValue as string) as RpcValue;
  if (own('sessionValue')) return decodeSession(w.sessionValue as Uint8Array);
  if (own('bytesValue')) return toBuffer(w.bytesValue as Uint8Array);
  if (own('listValue')) return (w.listValue?.values ?? []).map(fromWireValue);
  return null;
}

/** Most array nesting {@link holdsBinary} looks into (deeper arrays travel as JSON). */
const MAX_LIST_DEPTH = 32;

/** True when an array holds bytes or a session, directly or in nested arrays. */
function holdsBinary(arr: readonly unknown[], depth: number): boolean {
  if (depth >= MAX_LIST_DEPTH) return false;
  for (const item of arr) {
    if (typeof item !== 'object' || item === null) continue;
    if (ArrayBuffer.isView(item) || isSessionData(item)) return true;
    if (Array.isArray(item) && holdsBinary(item, depth + 1)) return true;
  }
  return false;
}

/**
 * Encodes a request as `mqgate.rpc.Request` bytes.
 * @throws EncodeError naming the argument that cannot be encoded.
 */
export function encodeRequest(req: RpcRequest): Buffer {
  const args: WireValue[] = new Array(req.args.length);
  for (let i = 0; i < req.args.length; i++) {
    try {
      args[i] = toWireValue(req.args[i]);
    } catch (err) {
      throw new EncodeError(`${req.fn}: argument ${i}: ${(err as Error).message}`);
    }
  }
  const wire: WireRequest = { id: req.id, fn: req.fn, args, replyTo: req.replyTo, deadline: req.deadline, caller: req.caller };
  return toBuffer(load().request.encode(wire).finish());
}

/**
 * A request whose envelope decoded but one of whose arguments did not (malformed JSON or
 * session bytes): carries the envelope so a server can still answer the caller. Code `DECODE`.
 */
export class RequestArgsError extends RpcError {
  constructor(
    readonly request: Omit<RpcRequest, 'args'>,
    cause: unknown,
  ) {
    super(`${request.fn}: malformed argument: ${cause instanceof Error ? cause.message : String(cause)}`, 'DECODE');
  }
}

/**
 * Decodes `mqgate.rpc.Request` bytes. Bytes arguments are views into `bytes`.
 * @throws RequestArgsError when an argument (JSON or session) is malformed; Error when the
 *   envelope itself is.
 */
export function decodeRequest(bytes: Uint8Array): RpcRequest {
  const m = load().request.decode(bytes) as unknown as WireRequest;
  const head = { id: m.id, fn: m.fn, replyTo: m.replyTo, deadline: m.deadline, caller: m.caller };
  let args: RpcValue[];
  try {
    args = m.args.map(fromWireValue);
  } catch (err) {
    throw new RequestArgsError(head, err);
  }
  return { ...head, args };
}

/**
 * Encodes a response as `mqgate.rpc.Response` bytes. A result that cannot be encoded
 * becomes an error response with code `ENCODE` instead (never throws for that).
 */
export function encodeResponse(res: RpcResponse): Buffer {
  let wire: WireResponse;
  if (res.error) {
    wire = { id: res.id, error: res.error.message, errorCode: res.error.code || 'REMOTE' };
  } else {
    try {
      wire = { id: res.id, result: toWireValue(res.result) };
    } catch (err) {
      wire = { id: res.id, error: `result: ${(err as Error).message}`, errorCode: 'ENCODE' };
    }
  }
  return toBuffer(load().response.encode(wire).finish());
}

/**
 * Decodes `mqgate.rpc.Response` bytes. A result that does not decode (malformed JSON or
 * session bytes) becomes an error with code `DECODE`.
 * @throws Error when the envelope itself is malformed.
 */
export function decodeResponse(bytes: Uint8Array): RpcResponse {
  const m = load().response.decode(bytes) as unknown as WireResponse;
  if (m.errorCode) return { id: m.id, error: { code: m.errorCode, message: m.error ?? '' } };
  try {
    return { id: m.id, result: fromWireValue(m.result) };
  } catch (err) {
    return { id: m.id, error: { code: 'DECODE', message: `malformed result: ${(err as Error).message}` } };
  }
}

/** The same bytes as a Buffer (no copy when they already are one, else a view of the same memory). */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
