/**
 * mqgate's wire (mqant's, plus the gate's own topics), as a client sees it. A small copy
 * of the constants the gate defines, so this package imports nothing of the server side.
 */

/** The gate pushes `{"reason": string}` here before it closes a connection on purpose (a kick, a takeover, a stop). */
export const KICK_TOPIC = 'gate/kick';
/** The gate pushes `{"sessionId","userId","token","expiresAt"}` here after every login and resume: the single-use resume token. */
export const SESSION_TOPIC = 'gate/session';
/** The request that resumes a dropped session on a new connection, body `{"token"}`, answered by the gate itself. */
export const RESUME_ROUTE = 'gate/HD_resume';
/** The request that replaces the connection's JWT before it expires, body `{"token"}`, answered by the gate itself. */
export const REFRESH_ROUTE = 'gate/HD_refresh';
/** Content Type of a reply envelope at MQTT 5 (a raw bytes Result comes without it). */
export const ENVELOPE_CONTENT_TYPE = 'application/json';

/** The reply envelope of a request: `{"Trace","Error","Result"}`, `Error` `""` on success. */
export interface Envelope {
  Trace: string;
  Error: string;
  Result: unknown;
}

/** What `request` and `notify` accept as a body: bytes as they are, a string as UTF-8, anything else as JSON. */
export type Body = Uint8Array | string | number | boolean | null | object | undefined;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The bytes or text to publish for `body`; undefined becomes `{}` (what a handler without arguments expects). */
export function encodeBody(body: Body): Uint8Array | string {
  if (body instanceof Uint8Array || typeof body === 'string') return body;
  return JSON.stringify(body === undefined ? {} : body);
}

export function utf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

export function toBytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Parsed JSON of `bytes`, or undefined when they are not JSON text. */
export function parseJson(bytes: Uint8Array): unknown {
  const first = bytes[0];
  // Only text that can open a JSON value: skips a decode + throw for most binary payloads.
  if (bytes.length === 0 || first === undefined || first < 0x09 || first > 0x7d) return undefined;
  try {
    return JSON.parse(utf8(bytes));
  } catch {
    return undefined;
  }
}

/** A push body as listeners get it: parsed JSON when the payload is JSON text, else the bytes. */
export function decodePush(payload: Uint8Array): unknown {
  const v = parseJson(payload);
  return v === undefined ? payload : v;
}

/**
 * The envelope of a reply, or a bytes Result. At MQTT 5 the Content Type tells them apart
 * (`application/json` on envelopes only); at 3.1.1 a payload is an envelope when it is a
 * JSON object with a string `Error` (a bytes Result is written unwrapped, mqant's `ProtocolMarshal`).
 */
export function decodeReply(payload: Uint8Array, v5: boolean, contentType: string | undefined): Envelope {
  if (v5 && contentType !== ENVELOPE_CONTENT_TYPE) return { Trace: '', Error: '', Result: payload };
  const v = parseJson(payload) as Partial<Envelope> | undefined;
  if (v !== null && typeof v === 'object' && typeof v.Error === 'string' && 'Result' in v)
    return { Trace: typeof v.Trace === 'string' ? v.Trace : '', Error: v.Error, Result: v.Result };
  return { Trace: '', Error: '', Result: payload };
}

/**
 * True when a push topic matches a listener's filter: an exact topic, or an MQTT filter with
 * `+` (one level) and a trailing `#` (any levels), MQTT-4.7.1.
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic || filter === '#') return true;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The `exp` claim of a JWT (s since the epoch), or undefined when it has none or is not a JWT. Not verified: the gate does that. */
export function jwtExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const claims = JSON.parse(utf8(Uint8Array.from(bin, (c) => c.charCodeAt(0)))) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}
