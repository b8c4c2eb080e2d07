import { quoteInput } from '@mqgate/rpc/internal';
import { describe, toRpcError } from './errors';

/** Argument checks of the backend Session's verbs: each throws a TypeError naming the verb and the argument. */

export function encodeBody(verb: string, body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (typeof body === 'object' && body !== null && !ArrayBuffer.isView(body) && !(body instanceof ArrayBuffer)) {
    let json: string;
    try {
      json = JSON.stringify(body);
    } catch (err) {
      throw new TypeError(`Session.${verb}: body is not JSON-serialisable: ${toRpcError(err).message}`);
    }
    return Buffer.from(json, 'utf8');
  }
  throw new TypeError(`Session.${verb}: body must be a Buffer, Uint8Array, string or JSON object, got ${describe(body)}`);
}

export function checkNonEmpty(verb: string, name: string, value: unknown): void {
  if (typeof value !== 'string' || value === '') throw new TypeError(`Session.${verb}: ${name} must be a non-empty string, got ${describe(value)}`);
}

/** A push topic: non-empty, and no MQTT wildcard (`+`, `#`), which a PUBLISH may not carry. */
export function checkTopic(verb: string, topic: unknown): void {
  checkNonEmpty(verb, 'topic', topic);
  if (/[+#]/.test(topic as string)) throw new TypeError(`Session.${verb}: topic ${quote(topic as string)} must not hold an MQTT wildcard (+ or #)`);
}

export function checkKey(verb: string, key: unknown): void {
  checkNonEmpty(verb, 'key', key);
}

export function checkValue(verb: string, value: unknown): void {
  if (typeof value !== 'string') throw new TypeError(`Session.${verb}: value must be a string, got ${describe(value)}`);
}

export function checkRule(where: string, rule: unknown): void {
  if (rule !== undefined && typeof rule !== 'function') throw new TypeError(`${where}: guestRule must be a function, got ${describe(rule)}`);
}

/** A string argument as an error text quotes it: cut to a short prefix (it may be client input, rpc `quoteInput`). */
export function quote(s: string): string {
  return quoteInput(s);
}

/** Keys an error text names at most. */
const KEYS_NAMED = 5;

export function listText(keys: readonly string[]): string {
  const named = keys.slice(0, KEYS_NAMED).map(quote);
  return `[${named.join(', ')}${keys.length > KEYS_NAMED ? `, … ${keys.length} keys` : ''}]`;
}
