// The request body a handler gets and the reply body a client gets: mqant's JSON envelope
// `{"Trace","Error","Result"}`, or bytes unwrapped.

import { clipInput } from '@mqgate/rpc/internal';

/** Content Type of a reply envelope to an MQTT 5 client (MQTT 5.0 §3.3.2.3.9). */
export const ENVELOPE_CONTENT_TYPE = 'application/json';

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/**
 * Request body as a handler receives it: text that parses as a JSON object becomes that
 * object (mqant's "map" argument); anything else, JSON arrays included, stays bytes.
 */
export function decodePayload(buf: Buffer): Record<string, unknown> | Buffer {
  let start = 0;
  let end = buf.length - 1;
  while (start <= end && isSpace(buf[start])) start++;
  while (end > start && isSpace(buf[end])) end--;
  if (end - start < 1 || buf[start] !== 0x7b || buf[end] !== 0x7d) return buf;
  try {
    const value: unknown = JSON.parse(buf.toString('utf8'));
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // not JSON: the handler gets the bytes
  }
  return buf;
}

/**
 * Characters of an `Error` a reply envelope carries at most: the gate's own texts cut each
 * client-sent value they name to a short prefix (rpc `clipInput`); this also bounds a
 * module's own error text that repeats what the client sent. Longer ones end `…(N chars)`.
 */
export const MAX_REPLY_ERROR_CHARS = 512;

/**
 * The reply body: bytes returned by a handler go out unwrapped (mqant's ProtocolMarshal);
 * anything else is wrapped in the envelope `{"Trace","Error","Result"}`, its Error cut to
 * {@link MAX_REPLY_ERROR_CHARS}.
 */
export function encodeReply(trace: string, error: string, result: unknown): Buffer {
  const body = replyBody(trace, error, result);
  return typeof body === 'string' ? Buffer.from(body) : body;
}

/**
 * {@link encodeReply}'s bytes, with the envelope as its JSON text (the PUBLISH encoder writes
 * it straight into the packet, one buffer and no copy; see encode.ts), the bytes of a bytes
 * result as they are.
 */
export function replyBody(trace: string, error: string, result: unknown): string | Buffer {
  if (error.length > MAX_REPLY_ERROR_CHARS) error = clipInput(error, MAX_REPLY_ERROR_CHARS);
  if (error === '' && result instanceof Uint8Array) {
    return Buffer.isBuffer(result) ? result : Buffer.from(result.buffer, result.byteOffset, result.byteLength);
  }
  try {
    // Same text as JSON.stringify({Trace, Error, Result}), without building the object.
    const body = result === undefined ? 'null' : JSON.stringify(result);
    return `{"Trace":${JSON.stringify(trace)},"Error":${error === '' ? '""' : JSON.stringify(error)},"Result":${body ?? 'null'}}`;
  } catch (err) {
    const message = `the handler's result could not be encoded as JSON: ${(err as Error).message}`;
    return JSON.stringify({ Trace: trace, Error: message, Result: null });
  }
}
