/**
 * Every text an MQTT client can get for a failed request comes from rpc CLIENT_TEXTS with its
 * code (no server id, session id, transport state or duration), except mqant's `Service(type:x)
 * not found` for the very target the client addressed and a handler's own error (the app's
 * text); the full cause is in the gate's warn log with the trace id. Table-driven: each of
 * mqgate's codes thrown by a module with an internal detail, then the real paths (a session verb
 * to a gate that is gone, a module that stopped answering, a handler past its deadline, an
 * unknown handler). MQTT.js clients, a gate on the in-process transport.
 */
import type { MqttClient } from 'mqtt';
import { Session } from '@mqgate/client';
import {
  CLIENT_TEXTS,
  DeadlineError,
  ERROR_CODES,
  FunctionNotFoundError,
  RpcError,
  ServerLostError,
  type Logger,
  type RpcValue,
  type SessionData,
} from '@mqgate/rpc';
import { FAILED_REQUEST_LOG_INTERVAL } from '../src/routing/router';
import { mqttConnect, request, startGate, type Harness } from './helpers/harness';

type Line = { fields: Record<string, unknown>; msg: string };
const warns: Line[] = [];
const logger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  error: () => undefined,
  warn: (fields, msg) => void warns.push({ fields: fields as Record<string, unknown>, msg }),
};
const DETAIL = 'internal detail: server echo@bb1f92 session ec2a77 at 10.1.2.3:6379 reconnecting after 1000 ms';

let h: Harness;
let client: MqttClient;
beforeAll(async () => {
  h = await startGate({ logger, handlerTimeout: 300 });
  await h.serve('fail', async (fn, args) => {
    const body = args[1] as { code?: string };
    if (fn === 'HD_code') throw new RpcError(DETAIL, body.code as string);
    if (fn === 'HD_plain') throw new Error('wrong password');
    if (fn === 'HD_app') throw new RpcError('out of coins', 'GAME_OVER');
    if (fn === 'HD_bindGone') {
      // A session verb to a gate that is gone: SessionVerbError `Session.bind("u1") failed for session …: Service(type:gate@gone) not found`.
      const s = new Session({ ...(args[0] as SessionData), serverId: 'gate@gone' }, h.transport);
      await s.bind('u1');
    }
    if (fn === 'HD_lost') throw new ServerLostError(`module unavailable: server echo@bb1f (type echo) stopped answering (no heartbeat for 1000 ms)`);
    if (fn === 'HD_slow') return new Promise<RpcValue>(() => undefined); // past handlerTimeout: DEADLINE
    throw new FunctionNotFoundError('fail@test', fn);
  });
  client = await mqttConnect(h.tcpUrl);
});
afterAll(async () => {
  await client.endAsync(true);
  await h.stop();
});

let seq = 0;
async function failed(topic: string, body: object = {}): Promise<{ Trace: string; Error: string }> {
  // The failed-request log keeps one line per kind per FAILED_REQUEST_LOG_INTERVAL (10 ms): one request per window.
  await new Promise((r) => setTimeout(r, 2 * FAILED_REQUEST_LOG_INTERVAL));
  const reply = await request(client, `${topic}/${++seq}`, JSON.stringify(body));
  expect(reply.Result).toBeNull();
  return reply as { Trace: string; Error: string };
}

/** The cause of the last failed request (trace `trace`: the connection's) is in the warn log, in full. */
function expectLogged(trace: string, text: RegExp | string): void {
  const line = warns.filter((l) => l.fields.trace === trace && l.msg === 'request failed').pop();
  expect(line).toBeDefined();
  expect(String(line?.fields.error)).toMatch(text);
}

const CODES = Object.keys(ERROR_CODES).filter((c) => c !== 'REMOTE');

test('every mqgate code but REMOTE has a client text starting with the code', () => {
  for (const code of CODES) expect(CLIENT_TEXTS[code as keyof typeof CLIENT_TEXTS]).toMatch(new RegExp(`^${code}: `));
});

test.each(CODES)('a module error of code %s reaches the client as its client text; the detail only in the log', async (code) => {
  const reply = await failed('fail/HD_code', { code });
  expect(reply.Error).toBe(CLIENT_TEXTS[code as keyof typeof CLIENT_TEXTS]);
  expect(reply.Error).not.toMatch(/bb1f|ec2a|10\.1\.2\.3|reconnecting| ms/);
  expectLogged(reply.Trace, DETAIL);
});

test.each([
  [
    'a session verb to a gate that is gone (SessionVerbError)',
    'fail/HD_bindGone',
    CLIENT_TEXTS.NO_SERVER,
    /^Session\.bind\("u1"\) failed for session .+: Service\(type:gate@gone\) not found$/,
  ],
  ['a module that stopped answering (ServerLostError)', 'fail/HD_lost', CLIENT_TEXTS.NO_SERVER, /^module unavailable: server echo@bb1f/],
  ['a handler past handlerTimeout (DeadlineError)', 'fail/HD_slow', CLIENT_TEXTS.DEADLINE, new DeadlineError('HD_slow', 300).message],
  ['an unknown handler (FunctionNotFoundError)', 'fail/HD_nope', CLIENT_TEXTS.NOT_FOUND, /^Method\(HD_nope\) not found in fail@test$/],
  [
    "a module nobody serves: mqant's text, naming only what the client sent",
    'nomod/HD_x',
    'Service(type:nomod) not found',
    'Service(type:nomod) not found',
  ],
  ['a server id nobody serves: the same', 'fail@gone/HD_x', 'Service(type:fail@gone) not found', 'Service(type:fail@gone) not found'],
  ["a handler's plain Error: the app's own text", 'fail/HD_plain', 'wrong password', 'wrong password'],
  ["a handler's error of an app code: the app's own text", 'fail/HD_app', 'out of coins', 'out of coins'],
])('%s', async (_what, topic, text, cause) => {
  const reply = await failed(topic);
  expect(reply.Error).toBe(text);
  expectLogged(reply.Trace, cause);
});
