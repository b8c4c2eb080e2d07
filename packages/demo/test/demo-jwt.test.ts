/**
 * The demo with MQGATE_JWT_SECRET: CONNECT needs a token, the user comes from it,
 * `user/HD_login` is refused; `npm run token` (dist/token.js) mints one. A child process,
 * real sockets, MQTT.js at 3.1.1 and 5.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import { call, connect, ok } from './helpers/client';
import { startDemo, type DemoProcess } from './helpers/demo-process';

const run = promisify(execFile);
const TOKEN_JS = join(__dirname, '..', 'dist', 'token.js');
const SECRET = 'demo-test-secret-0123456789abcdef0123';

let demo: DemoProcess;
const clients: MqttClient[] = [];

beforeAll(async () => {
  demo = await startDemo({ MQGATE_JWT_SECRET: SECRET });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});
afterAll(async () => {
  await demo.stop();
});

async function mint(userId: string, ...extra: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [TOKEN_JS, userId, ...extra], { env: { ...process.env, MQGATE_JWT_SECRET: SECRET } });
  return stdout.trim();
}

test.each([4, 5] as const)('level %i: a token from `npm run token` logs in at CONNECT; user/HD_login is refused', async (v) => {
  expect(demo.output()).toContain('JWT required at CONNECT');
  const c = await connect(demo.tcpUrl, { protocolVersion: v, username: 'alice', password: await mint(`alice-${v}`, '--ttl', '600') });
  clients.push(c);
  expect(await ok(c, 'user/HD_get')).toMatchObject({ userId: `alice-${v}` });
  const login = await call(c, 'user/HD_login', { userId: 'mallory' });
  expect(login.Error).toMatch(/^JWT_REQUIRED: /);
  expect(login.Result).toBeNull();
  expect(await ok(c, 'user/HD_get')).toMatchObject({ userId: `alice-${v}` });
});

test('without a token, or with one signed by another secret, CONNECT is refused', async () => {
  await expect(connect(demo.tcpUrl, { clientId: 'no-token' })).rejects.toMatchObject({ code: 4 });
  await expect(connect(demo.wsUrl, { protocolVersion: 5, username: 'u', password: 'not-a-token' })).rejects.toMatchObject({ code: 0x86 });
  const { stdout } = await run(process.execPath, [TOKEN_JS, 'bob'], {
    env: { ...process.env, MQGATE_JWT_SECRET: 'another-secret-0123456789abcdef0123456' },
  });
  await expect(connect(demo.tcpUrl, { username: 'u', password: stdout.trim() })).rejects.toMatchObject({ code: 4 });
});

test('the token script refuses to run without MQGATE_JWT_SECRET, and the demo refuses a short one', async () => {
  const env = { ...process.env };
  delete env.MQGATE_JWT_SECRET;
  await expect(run(process.execPath, [TOKEN_JS, 'bob'], { env })).rejects.toMatchObject({
    code: 2,
    stderr: expect.stringContaining('MQGATE_JWT_SECRET is not set'),
  });
  await expect(startDemo({ MQGATE_JWT_SECRET: 'short' })).rejects.toThrow(/MQGATE_JWT_SECRET must be at least 32 bytes/);
});

test('npm run token -- --help prints the usage (never a token for user "--help"); an unknown option is an error', async () => {
  const env = { ...process.env, MQGATE_JWT_SECRET: SECRET };
  const help = await run(process.execPath, [TOKEN_JS, '--help'], { env });
  expect(help.stdout).toMatch(/^usage: MQGATE_JWT_SECRET=<secret> npm run token -- <userId> \[--ttl <seconds>\]\n/);
  await expect(run(process.execPath, [TOKEN_JS, '--bogus', 'bob'], { env })).rejects.toMatchObject({
    code: 2,
    stderr: expect.stringContaining("Unknown option '--bogus'"),
  });
});
