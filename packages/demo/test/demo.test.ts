import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import { call, connect, nextMessage, ok } from './helpers/client';
import { readConfig } from '../src/config';
import { startDemo, type DemoProcess } from './helpers/demo-process';

const run = promisify(execFile);

let demo: DemoProcess;
const clients: MqttClient[] = [];
async function client(url: string, protocolVersion: 3 | 4 | 5 = 4): Promise<MqttClient> {
  const c = await connect(url, { protocolVersion });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  demo = await startDemo();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});
afterAll(async () => {
  await demo.stop();
});

describe.each([
  ['TCP', 3],
  ['TCP', 4],
  ['WebSocket', 3],
  ['WebSocket', 4],
  ['TCP', 5],
  ['WebSocket', 5],
] as const)('demo over %s, MQTT level %i', (network, level) => {
  const url = () => (network === 'TCP' ? demo.tcpUrl : demo.wsUrl);

  test('echo returns a JSON object as Result and bytes raw', async () => {
    const c = await client(url(), level);
    expect(await call(c, 'echo/HD_echo', { hi: [1, 'two'] })).toEqual({ Trace: expect.any(String), Error: '', Result: { hi: [1, 'two'] } });
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const reply = nextMessage(c, 'echo/HD_echo/raw');
    c.publish('echo/HD_echo/raw', bytes);
    expect(Buffer.compare(await reply, bytes)).toBe(0);
  });

  test('login, set, get, logout', async () => {
    const c = await client(url(), level);
    const login = await ok(c, 'user/HD_login', { userId: `alice-${network}-${level}` });
    expect(login).toEqual({ userId: `alice-${network}-${level}`, settings: expect.any(Object) });
    expect(await ok(c, 'user/HD_set', { key: 'color', value: 'red' })).toEqual({ settings: expect.objectContaining({ color: 'red' }) });
    const got = await ok(c, 'user/HD_get');
    expect(got).toEqual({
      userId: `alice-${network}-${level}`,
      sessionId: expect.stringMatching(/^[0-9a-f]{32}$/),
      network: network === 'TCP' ? 'tcp' : 'websocket',
      ip: '127.0.0.1',
      settings: expect.objectContaining({ color: 'red' }),
    });
    expect(await ok(c, 'user/HD_logout')).toEqual({ userId: '' });
    expect(await ok(c, 'user/HD_get')).toMatchObject({ userId: '' });
  });
});

test('chat/HD_say pushes to every session on the gate without a SUBSCRIBE', async () => {
  const a = await client(demo.tcpUrl);
  const b = await client(demo.wsUrl);
  await ok(a, 'user/HD_login', { userId: 'bob' });
  const atB = nextMessage(b, 'chat/onMessage');
  const atA = nextMessage(a, 'chat/onMessage');
  const result = await ok<{ delivered: number }>(a, 'chat/HD_say', { text: 'hello' });
  expect(result.delivered).toBeGreaterThanOrEqual(2);
  expect(JSON.parse((await atB).toString())).toEqual({ from: 'bob', text: 'hello' });
  expect(JSON.parse((await atA).toString())).toEqual({ from: 'bob', text: 'hello' });
  // a guest speaks under its session id
  const sid = (await ok<{ sessionId: string }>(b, 'user/HD_get')).sessionId;
  const fromGuest = nextMessage(a, 'chat/onMessage');
  await ok(b, 'chat/HD_say', { text: 'hi' });
  expect(JSON.parse((await fromGuest).toString())).toEqual({ from: sid, text: 'hi' });
});

test.each([
  ['user/HD_login', {}, /userId/],
  ['user/HD_login', { userId: 42 }, /userId.*string/],
  ['user/HD_set', { key: 'k' }, /value/],
  ['chat/HD_say', 'not json', /JSON object/],
  ['user/HD_nope', {}, /^NOT_FOUND: /], // the cause (Method(HD_nope) not found in user@…) is in the gate's log
  ['nomodule/HD_x', {}, /Service\(type:nomodule\) not found/],
])('bad input to %s gets an Error reply', async (route, body, error) => {
  const c = await client(demo.tcpUrl);
  const env = await call(c, route, typeof body === 'string' ? Buffer.from(body) : body);
  expect(env.Error).toMatch(error);
  expect(env.Result).toBeNull();
  // and the demo keeps serving
  expect((await call(c, 'echo/HD_echo', { still: 'up' })).Result).toEqual({ still: 'up' });
});

test('mosquitto_rr in its default mode (MQTT 5, Response Topic, no msgid) gets the envelope back', async () => {
  const echo = await run('mosquitto_rr', [
    '-h',
    '127.0.0.1',
    '-p',
    String(demo.tcpPort),
    '-W',
    '5',
    '-t',
    'echo/HD_echo',
    '-e',
    'some/response',
    '-m',
    '{"a":1}',
  ]);
  expect(JSON.parse(echo.stdout)).toEqual({ Trace: expect.any(String), Error: '', Result: { a: 1 } });
  // With Correlation Data and a User Property, printed with the reply's properties (-F %j).
  const args = ['-h', '127.0.0.1', '-p', String(demo.tcpPort), '-W', '5', '-t', 'echo/HD_echo', '-e', 'some/response', '-m', '{"b":2}', '-F', '%j'];
  const full = await run('mosquitto_rr', [...args, '-D', 'publish', 'correlation-data', 'req-7', '-D', 'publish', 'user-property', 'lang', 'fr']);
  const printed = JSON.parse(full.stdout) as { topic: string; properties: Record<string, unknown>; payload: string };
  expect(printed.topic).toBe('some/response');
  expect(printed.properties).toMatchObject({ 'payload-format-indicator': 1, 'content-type': 'application/json', 'correlation-data': 'req-7' });
  expect(JSON.stringify(printed.properties)).toContain('lang');
  expect(JSON.parse(printed.payload)).toMatchObject({ Error: '', Result: { b: 2 } });
});

test('mosquitto_rr, a client nobody here wrote, gets the envelope back', async () => {
  const args = ['-V', '311', '-h', '127.0.0.1', '-p', String(demo.tcpPort), '-W', '5'];
  const echo = await run('mosquitto_rr', [...args, '-t', 'echo/HD_echo/1', '-e', 'echo/HD_echo/1', '-m', '{"hello":"world"}']).catch(
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new Error('mosquitto_rr not found: install Debian package mosquitto-clients (.ci/run does)');
      throw err;
    },
  );
  expect(JSON.parse(echo.stdout)).toEqual({ Trace: expect.any(String), Error: '', Result: { hello: 'world' } });
  const login = await run('mosquitto_rr', [...args, '-t', 'user/HD_login/1', '-e', 'user/HD_login/1', '-m', '{"userId":"carol"}']);
  expect(JSON.parse(login.stdout)).toMatchObject({ Error: '', Result: { userId: 'carol' } });
});

test('the demo serves /metrics, /healthz and /readyz by default (9563; the test asks for an OS port)', async () => {
  expect(demo.metricsPort).toEqual(expect.any(Number));
  const base = `http://127.0.0.1:${demo.metricsPort}`;
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  const ready = await fetch(`${base}/readyz`);
  expect(ready.status).toBe(200);
  expect(await ready.json()).toEqual({ listeners: true, transport: true, storage: true, accepting: true });
  const c = await client(demo.tcpUrl);
  await call(c, 'echo/HD_echo', { m: 1 });
  expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/mqgate_requests_total\{module="echo",handler="HD_echo",outcome="ok"\} [1-9]/);
});

test('MQGATE_METRICS_PORT: 9563 by default, off turns the ops server off, anything else is refused', () => {
  expect(readConfig({}).metricsPort).toBe(9563);
  expect(readConfig({ MQGATE_METRICS_PORT: '0' }).metricsPort).toBe(0);
  expect(readConfig({ MQGATE_METRICS_PORT: 'off' }).metricsPort).toBe(false);
  expect(() => readConfig({ MQGATE_METRICS_PORT: '70000' })).toThrow('MQGATE_METRICS_PORT must be a port from 0 to 65535 or off, got "70000"');
});

test('MQGATE_HTTP_PORT (the demo page): 3080 by default, 0 for one the OS picks, off for none, anything else is refused', () => {
  expect(readConfig({})).toMatchObject({ httpPort: 3080, httpPortSet: false });
  expect(readConfig({ MQGATE_HTTP_PORT: '0' })).toMatchObject({ httpPort: 0, httpPortSet: true });
  expect(readConfig({ MQGATE_HTTP_PORT: 'off' }).httpPort).toBe(false);
  expect(() => readConfig({ MQGATE_HTTP_PORT: 'x' })).toThrow('MQGATE_HTTP_PORT must be a port from 0 to 65535 or off, got "x"');
});
