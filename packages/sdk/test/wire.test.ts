/** The SDK's pure pieces: push topic filters (MQTT-4.7.1), the backoff formula, reply and push decoding, a JWT's exp. */
import { DEFAULTS, backoffDelay, topicMatches } from '@mqgate/sdk';
import { decodePush, decodeReply, encodeBody, jwtExpiry } from '../src/wire';

test.each([
  ['chat/onMessage', 'chat/onMessage', true],
  ['chat/+', 'chat/onMessage', true],
  ['chat/+', 'chat/a/b', false],
  ['chat/#', 'chat/a/b', true],
  ['chat/#', 'chat', true],
  ['#', 'anything/at/all', true],
  ['+/onMessage', 'chat/onMessage', true],
  ['chat/onMessage', 'chat/onWhisper', false],
  ['chat', 'chat/onMessage', false],
] as const)('filter %s on topic %s: %s', (filter, topic, matches) => {
  expect(topicMatches(filter, topic)).toBe(matches);
});

test('backoff: exponential from initialDelay, capped at maxDelay, less up to jitter of it', () => {
  const r = { ...DEFAULTS.reconnect };
  expect([0, 1, 2, 3, 10].map((n) => backoffDelay(r, n, () => 0))).toEqual([500, 1000, 2000, 4000, 30_000]);
  expect(backoffDelay(r, 0, () => 1)).toBe(250); // jitter 0.5 takes off up to half
  expect(backoffDelay({ ...r, jitter: 0 }, 2, () => 1)).toBe(2000);
});

test('replies: an envelope by Content Type at MQTT 5, by shape at 3.1.1; bytes otherwise', () => {
  const env = new TextEncoder().encode('{"Trace":"t","Error":"","Result":{"a":1}}');
  expect(decodeReply(env, true, 'application/json')).toEqual({ Trace: 't', Error: '', Result: { a: 1 } });
  expect(decodeReply(env, false, undefined)).toEqual({ Trace: 't', Error: '', Result: { a: 1 } });
  expect(decodeReply(env, true, undefined).Result).toBe(env); // a raw Result that happens to look like JSON
  const bytes = new Uint8Array([0, 255, 7]);
  expect(decodeReply(bytes, false, undefined).Result).toBe(bytes);
  expect(decodeReply(new TextEncoder().encode('[1,2]'), false, undefined).Result).toEqual(new TextEncoder().encode('[1,2]'));
});

test('pushes decode JSON text and keep other bytes; bodies encode like the server', () => {
  expect(decodePush(new TextEncoder().encode('{"from":"a"}'))).toEqual({ from: 'a' });
  const bytes = new Uint8Array([1, 2, 3]);
  expect(decodePush(bytes)).toBe(bytes);
  expect(encodeBody(undefined)).toBe('{}');
  expect(encodeBody({ a: 1 })).toBe('{"a":1}');
  expect(encodeBody('text')).toBe('text');
  expect(encodeBody(bytes)).toBe(bytes);
});

test("jwtExpiry reads a JWT's exp, unverified; undefined for anything else", () => {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  expect(jwtExpiry(`${part({ alg: 'HS256' })}.${part({ sub: 'a', exp: 1_900_000_000 })}.sig`)).toBe(1_900_000_000);
  expect(jwtExpiry(`${part({ alg: 'HS256' })}.${part({ sub: 'a' })}.sig`)).toBeUndefined();
  expect(jwtExpiry('not a token')).toBeUndefined();
  expect(jwtExpiry('a.!!!.c')).toBeUndefined();
});
