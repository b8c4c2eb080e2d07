/**
 * The demo's variables: the per-address admission limits under the `mqgate` command's names
 * (checked as the command checks them, and applied by a real demo process), the command's
 * name for the WebSocket port, and a warning for any MQGATE_* variable the demo does not read.
 */
import { createConnection } from 'node:net';
import { ADMISSION_KEYS, envName, FIELDS } from '@mqgate/cli';
import { mqttConnect } from '@mqgate/test-support';
import { ADMISSION_VARIABLES, DEMO_VARIABLES, readConfig, renameVariables, RENAMED_VARIABLES } from '../src/config';
import { startDemo, type DemoProcess } from './helpers/demo-process';

test('the admission limits are read under the command names, with its defaults and checks', () => {
  expect(ADMISSION_VARIABLES).toEqual(ADMISSION_KEYS.map(envName));
  for (const key of ADMISSION_KEYS) expect(FIELDS.map((f) => f.key)).toContain(key);
  const defaults = readConfig({}).admission;
  expect(defaults).toMatchObject({ maxConnectionsPerIp: 1000, connectRate: { perSecond: 50, burst: 200 }, maxBans: 10_000 });
  const set = readConfig({
    MQGATE_GATE_MAX_CONNECTIONS_PER_IP: '2',
    MQGATE_GATE_CONNECT_RATE_PER_SECOND: '0',
    MQGATE_GATE_FLAPPING_MAX_COUNT: '3',
    MQGATE_GATE_FLAPPING_WINDOW: '1000',
  }).admission;
  expect(set).toMatchObject({ maxConnectionsPerIp: 2, connectRate: false, flapping: { maxCount: 3, window: 1000, banTime: 300_000 } });
  expect(() => readConfig({ MQGATE_GATE_MAX_CONNECTIONS_PER_IP: '-1' })).toThrow(
    'gate.maxConnectionsPerIp (from MQGATE_GATE_MAX_CONNECTIONS_PER_IP): got -1; accepted: an integer from 0 to 2147483647',
  );
  expect(readConfig({ MQGATE_WEBSOCKET_PORT: '3700' }).wsPort).toBe(3700);
});

test('every demo name the command also has is the command name, checked as the command checks it', () => {
  const keys = FIELDS.map((f) => envName(f.key));
  for (const name of Object.values(RENAMED_VARIABLES)) expect(keys).toContain(name);
  expect(() => readConfig({ MQGATE_TRANSPORT_TIMEOUT: '0' })).toThrow('transport.timeout (from MQGATE_TRANSPORT_TIMEOUT): got 0');
  expect(() => readConfig({ MQGATE_DUPLICATE_LOGIN_POLICY: 'both' })).toThrow('duplicateLogin.policy (from MQGATE_DUPLICATE_LOGIN_POLICY)');
  const c = readConfig({
    MQGATE_TRANSPORT_TIMEOUT: '2500',
    MQGATE_STORAGE_TTL: '1000',
    MQGATE_GATE_HEARTBEAT_INTERVAL: '500',
    MQGATE_GATE_RESUME_WINDOW: '0',
    MQGATE_DUPLICATE_LOGIN_POLICY: 'kick-old',
    MQGATE_DUPLICATE_LOGIN_MAX_SESSIONS_PER_USER: '3',
    MQGATE_TRANSPORT_PREFIX: 'app:',
    MQGATE_LOG_LEVEL: 'warn',
  });
  expect(c).toMatchObject({
    rpcTimeout: 2500,
    sessionTtl: 1000,
    heartbeatInterval: 500,
    resumeWindow: 0,
    duplicateLogin: 'kick-old',
    maxSessionsPerUser: 3,
    prefix: 'app:',
    logLevel: 'warn',
  });
  expect(readConfig({}).registryTtl).toBe(20_000);
});

test('an old demo name is read when the new one is unset, with a warning; ignored when both are set', () => {
  expect(readConfig({ MQGATE_RPC_TIMEOUT_MS: '1234' }).rpcTimeout).toBe(1234);
  expect(renameVariables({ MQGATE_RPC_TIMEOUT_MS: '1234' }).warnings).toEqual([
    "MQGATE_RPC_TIMEOUT_MS is deprecated, read as MQGATE_TRANSPORT_TIMEOUT (the mqgate command's name)",
  ]);
  expect(readConfig({ MQGATE_RPC_TIMEOUT_MS: '1234', MQGATE_TRANSPORT_TIMEOUT: '99' }).rpcTimeout).toBe(99);
  expect(renameVariables({ MQGATE_RPC_TIMEOUT_MS: '1', MQGATE_TRANSPORT_TIMEOUT: '99' }).warnings).toEqual([
    'MQGATE_RPC_TIMEOUT_MS is ignored: MQGATE_TRANSPORT_TIMEOUT is set',
  ]);
  expect(readConfig({ MQGATE_WS_PORT: '3701' }).wsPort).toBe(3701);
});

describe('a demo process', () => {
  let demo: DemoProcess;
  beforeAll(async () => {
    demo = await startDemo({ MQGATE_GATE_MAX_CONNECTIONS_PER_IP: '1', MQGATE_WS_PORT: '0', MQGATE_NO_SUCH_THING: 'x' });
  });
  afterAll(() => demo?.stop());

  test('applies MQGATE_GATE_MAX_CONNECTIONS_PER_IP: a second connection from the address is closed before CONNECT', async () => {
    const first = await mqttConnect(demo.tcpUrl, { protocolVersion: 4, reconnectPeriod: 0 });
    const second = createConnection(demo.tcpPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      second.on('close', () => resolve());
      second.on('data', () => reject(new Error('the second connection got bytes')));
    });
    expect(first.connected).toBe(true);
    await first.endAsync();
  });

  test('warns about MQGATE_* variables it does not read, and about an old name beside its new one', () => {
    expect(demo.output()).toContain('mqgate demo: warning: MQGATE_WS_PORT is ignored: MQGATE_WEBSOCKET_PORT is set');
    expect(demo.output()).not.toContain('MQGATE_WS_PORT is not a variable');
    expect(demo.output()).toContain('mqgate demo: warning: MQGATE_NO_SUCH_THING is not a variable of mqgate demo; ignored');
    for (const name of DEMO_VARIABLES) expect(demo.output()).not.toContain(`warning: ${name} `);
  });
});
