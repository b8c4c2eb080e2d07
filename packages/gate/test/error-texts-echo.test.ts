/**
 * An Error reply never gives back more of what the client sent than a short prefix (rpc
 * `clipInput` / `quoteInput`): a 60 000-character user id, settings key, handler name or
 * module type comes back as its first 40 characters and `…(N chars)`, and a module's own
 * error text that repeats its input is cut to MAX_REPLY_ERROR_CHARS. An MQTT.js client, a
 * module using @mqgate/client's Session the way the demo's user module does.
 */
import type { MqttClient } from 'mqtt';
import { Session } from '@mqgate/client';
import { CLIENT_TEXTS, FunctionNotFoundError, type RpcValue, type SessionData } from '@mqgate/rpc';
import { INPUT_ECHO_CHARS } from '@mqgate/rpc/internal';
import { MAX_REPLY_ERROR_CHARS } from '../src/routing/envelope';
import { nextMessage } from '@mqgate/test-support';
import { mqttConnect, startGate, type Harness } from './helpers/harness';

let h: Harness;
let client: MqttClient;
beforeAll(async () => {
  h = await startGate();
  await h.serve('user', async (fn, args) => {
    const s = new Session(args[0] as SessionData, h.transport);
    const body = args[1] as { userId?: string; key?: string; text?: string };
    if (fn === 'HD_login') {
      await s.bind(body.userId as string);
      return { userId: s.userId } as RpcValue;
    }
    if (fn === 'HD_set') {
      await s.set(body.key as string, 'v');
      return { ok: true };
    }
    if (fn === 'HD_echoError') throw new Error(`cannot use ${body.text}`);
    throw new FunctionNotFoundError('user@test', fn);
  });
  client = await mqttConnect(h.tcpUrl);
});
afterAll(async () => {
  await client.endAsync(true);
  await h.stop();
});

/** Sends a request and resolves with the raw reply payload on the same topic. */
function rawRequest(topic: string, body: string): Promise<Buffer> {
  const reply = nextMessage(client, topic);
  client.publish(topic, body);
  return reply;
}

const BIG = 60_000;
const big = (c: string) => c.repeat(BIG);

// Where the failure has an mqgate code, the client gets that code's CLIENT_TEXTS entry (no
// input at all); otherwise the input comes back cut to INPUT_ECHO_CHARS.
test.each([
  ['a user id in Bind (the module passes the gate error on)', 'user/HD_login/1', JSON.stringify({ userId: big('u') }), 'u', 'LIMIT'],
  ['a settings key in Set', 'user/HD_set/2', JSON.stringify({ key: big('k') }), 'k', 'LIMIT'],
  ['a handler name without HD_', `user/${big('h')}/3`, '{}', 'h', undefined],
  ['a handler nobody serves', `user/HD_${big('n')}/4`, '{}', 'n', 'NOT_FOUND'],
  ['a module type nobody serves', `${big('m')}/HD_x/5`, '{}', 'm', 'NO_SERVER'],
] as const)("%s comes back cut to a short prefix, or as its code's client text", async (_what, topic, body, c, code) => {
  const reply = await rawRequest(topic, body);
  const { Error: error } = JSON.parse(reply.toString()) as { Error: string };
  expect(error).not.toContain(c.repeat(INPUT_ECHO_CHARS + 1));
  expect(reply.length).toBeLessThan(1000);
  if (code !== undefined) {
    expect(error).toBe(CLIENT_TEXTS[code]);
  } else {
    expect(error).toContain(c.repeat(INPUT_ECHO_CHARS));
    expect(error).toMatch(/…\(\d+ chars\)/);
  }
});

test("a module's own error text that repeats its input is cut to MAX_REPLY_ERROR_CHARS", async () => {
  const reply = await rawRequest('user/HD_echoError/6', JSON.stringify({ text: big('e') }));
  const { Error: error } = JSON.parse(reply.toString()) as { Error: string };
  expect(error.startsWith('cannot use eee')).toBe(true);
  expect(error).toMatch(/…\(60011 chars\)$/);
  expect(error.length).toBeLessThan(MAX_REPLY_ERROR_CHARS + 20);
  expect(reply.length).toBeLessThan(1000);
});
