/**
 * The `mqgate` command as an operator runs it: child processes of the built bin, the
 * example config files, a real Redis; config validation, --check, --print-config, env
 * overrides; a request over mqtts through `mqgate gate` to `mqgate modules`, seen in /metrics.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getRedis, makeTestPki, mqttConnect, spawnUntil, type RedisUnderTest, type TestPki } from '@mqgate/test-support';
import { DEFAULTS } from '@mqgate/gate';
import { envName, FIELDS, gateOptions, loadConfig, ConfigError } from '../src';

const ROOT = resolve(__dirname, '../../..');
const BIN = join(ROOT, 'packages/cli/dist/bin.js');
const EXAMPLES = join(ROOT, 'examples');

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tempConfig(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'mqgate-cli-')), 'c.yaml');
  writeFileSync(file, text);
  return file;
}

describe('config', () => {
  test('--check on a bad value names the key, the value and what is accepted; exit 2', () => {
    const r = run(['gate', '--check', '--config', tempConfig('transport:\n  url: redis://x\ngate:\n  maxInflight: -3\n')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('gate.maxInflight: got -3; accepted: an integer from 1 to 10000');
  });

  test('unknown keys, bad env values and missing required keys are errors too', () => {
    expect(run(['gate', '--check', '--config', tempConfig('transport:\n  url: redis://x\ntcp:\n  prot: 1\n')]).err).toMatch(/unknown key tcp\.prot/);
    const env = run(['gate', '--check', '--config', tempConfig('transport:\n  url: redis://x\n')], { MQGATE_DUPLICATE_LOGIN_POLICY: 'sometimes' });
    expect(env.code).toBe(2);
    expect(env.err).toContain(
      'duplicateLogin.policy (from MQGATE_DUPLICATE_LOGIN_POLICY): got "sometimes"; accepted: one of allow, kick-old, reject-new',
    );
    expect(run(['modules', '--check', '--config', tempConfig('transport:\n  url: redis://x\n')]).err).toMatch(/modules: missing/);
    expect(run(['gate', '--check', '--config', tempConfig('mqtts:\n  enabled: true\ntransport:\n  url: redis://x\n')]).err).toMatch(
      /tls\.key \/ tls\.cert: missing/,
    );
  });

  test('--check passes on the examples; --print-config shows defaults and env overrides, secrets masked', () => {
    expect(run(['gate', '--check', '--config', join(EXAMPLES, 'gate.yaml')])).toMatchObject({ code: 0, out: 'mqgate gate: config ok\n' });
    expect(run(['modules', '--check', '--config', join(EXAMPLES, 'modules.yaml')]).code).toBe(0);
    const r = run(['gate', '--print-config', '--config', join(EXAMPLES, 'gate.yaml')], {
      MQGATE_TRANSPORT_URL: 'redis://:hunter2@db:6379',
      MQGATE_GATE_MAX_CONNECTIONS: '5000',
    });
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('hunter2');
    expect(r.out).toContain('url: redis://:****@db:6379');
    expect(r.out).toMatch(/maxConnections: 5000/);
    expect(r.out).toMatch(/stopTimeout: 10000/);
  });

  test('every gate.* key defaults to the gate DEFAULTS; env names are derived from keys', () => {
    for (const f of FIELDS.filter((x) => x.key.startsWith('gate.'))) {
      // gate.connectRate.perSecond is DEFAULTS.connectRate.perSecond
      const [name, field] = f.key.slice(5).split('.');
      const d = DEFAULTS[name as keyof typeof DEFAULTS];
      expect(f.default).toEqual(field === undefined ? d : (d as unknown as Record<string, unknown>)[field]);
    }
    expect(envName('gate.maxConnectionsPerIp')).toBe('MQGATE_GATE_MAX_CONNECTIONS_PER_IP');
    expect(() => loadConfig(tempConfig('[1, 2]'))).toThrow(ConfigError);
    expect(
      loadConfig(undefined, { MQGATE_TRANSPORT_URL: 'redis://y', MQGATE_GATE_TRUSTED_PROXIES: '[10.0.0.1, 10.0.0.2]' }).get('gate.trustedProxies'),
    ).toEqual(['10.0.0.1', '10.0.0.2']);
  });
});

test('unknown MQGATE_* variables get a warning naming them; known ones none', () => {
  const r = run(['gate', '--check', '--config', join(EXAMPLES, 'gate.yaml')], { MQGATE_GATE_MAX_INFLIHGT: '5', MQGATE_GATE_MAX_INFLIGHT: '5' });
  expect(r.code).toBe(0);
  expect(r.err).toBe('mqgate gate: warning: MQGATE_GATE_MAX_INFLIHGT is not a variable of mqgate gate; ignored\n');
});

test('gate.connectRate.* and gate.flapping.* become the gate options; a first field of 0 turns one off', () => {
  const opts = (env: Record<string, string>) => gateOptions(loadConfig(undefined, { MQGATE_TRANSPORT_URL: 'redis://y', ...env }));
  expect(opts({})).toMatchObject({ connectRate: DEFAULTS.connectRate, flapping: DEFAULTS.flapping });
  expect(opts({ MQGATE_GATE_CONNECT_RATE_PER_SECOND: '5', MQGATE_GATE_FLAPPING_MAX_COUNT: '0' })).toMatchObject({
    connectRate: { perSecond: 5, burst: 200 },
    flapping: false,
  });
  expect(Object.keys(opts({})).filter((k) => k.includes('.'))).toEqual([]);
});

describe('storage.module', () => {
  const file = (text: string) => {
    const f = join(mkdtempSync(join(tmpdir(), 'mqgate-storage-')), 's.cjs');
    writeFileSync(f, text);
    return f;
  };
  /** loadStorage(file) in a child process (jest's VM has no dynamic import): what it resolved to, or the error. */
  const load = (storageFile: string, then = '') => {
    const script = `const { loadStorage } = require(${JSON.stringify(join(ROOT, 'packages/cli/dist'))});
      loadStorage(${JSON.stringify(storageFile)}, { ttl: 60000, logger: { info() {} } })
        .then(async (s) => { ${then} })
        .catch((err) => console.log(err.constructor.name + ': ' + err.message));`;
    const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    return r.stdout.trim() + r.stderr;
  };

  test("the example's factory gets the ttl and returns a working StorageHandler", () => {
    const out = load(
      join(EXAMPLES, 'storage', 'map-storage.cjs'),
      `const { decodeSession } = require('@mqgate/rpc');
       await s.storage({ userId: 'alice', settings: { color: 'blue' } });
       console.log(JSON.stringify(decodeSession(await s.query('alice')).settings), await s.query('bob'));`,
    );
    expect(out).toBe('{"color":"blue"} null');
  });

  test('a file that exports no function, or a factory that returns no StorageHandler, is a ConfigError naming it', () => {
    const noFunction = file('module.exports = { query() {} };');
    expect(load(noFunction)).toBe(
      `ConfigError: storage.module: ${noFunction} must default-export a function ({ ttl, logger }) => StorageHandler, got object`,
    );
    const half = file('module.exports = () => ({ query: async () => null, storage: async () => {} });');
    expect(load(half)).toBe(`ConfigError: storage.module: the factory of ${half} returned no StorageHandler (missing delete, heartbeat)`);
    expect(load('/no/such/file.cjs')).toMatch(/^ConfigError: storage.module: cannot load \/no\/such\/file.cjs: /);
  });
});

describe('gate and modules from the example configs', () => {
  let redis: RedisUnderTest;
  let pki: TestPki;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    redis = await getRedis();
    pki = makeTestPki();
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (redis?.owned) await redis.stop();
    pki?.remove();
  });

  /** Starts the bin and resolves once `ready` matches its output (test-support's spawnUntil). */
  async function start(
    args: string[],
    env: Record<string, string>,
    ready: RegExp,
  ): Promise<{ child: ChildProcess; line: RegExpMatchArray; exit: Promise<number | null> }> {
    const p = await spawnUntil([BIN, ...args], { ...process.env, ...env }, ready, { name: `mqgate ${args[0]}`, line: String(ready) });
    children.push(p.child);
    return { child: p.child, line: p.match, exit: p.exited };
  }

  test('a request over mqtts reaches the echo module in the other process and shows in /metrics', async () => {
    const prefix = `mqgate-cli-${process.pid}:`;
    // a storage module of the test's own, wrapping the example's, that logs each call to a file
    const dir = mkdtempSync(join(tmpdir(), 'mqgate-storage-module-'));
    const storageCalls = join(dir, 'calls.txt');
    const storageModule = join(dir, 'logged-storage.cjs');
    writeFileSync(storageCalls, '');
    writeFileSync(
      storageModule,
      `const { appendFileSync } = require('node:fs');
const inner = require(${JSON.stringify(join(EXAMPLES, 'storage', 'map-storage.cjs'))});
module.exports = (options) => {
  const s = inner(options);
  const log = (m, userId) => appendFileSync(${JSON.stringify(storageCalls)}, m + ' ' + userId + '\\n');
  return {
    query: (userId) => (log('query', userId), s.query(userId)),
    storage: (session) => (log('storage', session.userId), s.storage(session)),
    delete: (session) => (log('delete', session.userId), s.delete(session)),
    heartbeat: (session) => (log('heartbeat', session.userId), s.heartbeat(session)),
  };
};
`,
    );
    const common = { MQGATE_TRANSPORT_URL: redis.url, MQGATE_TRANSPORT_PREFIX: prefix, MQGATE_LOG_LEVEL: 'warn' };
    const modules = await start(['modules', '--config', join(EXAMPLES, 'modules.yaml')], common, /mqgate modules ready: (.*)\n/);
    expect(modules.line[1]).toBe('user, chat, echo');
    const ports = {
      MQGATE_TCP_PORT: '0',
      MQGATE_WEBSOCKET_PORT: '0',
      MQGATE_MQTTS_PORT: '0',
      MQGATE_WSS_PORT: '0',
      MQGATE_METRICS_PORT: '0',
      MQGATE_TCP_HOST: '127.0.0.1',
      MQGATE_MQTTS_HOST: '127.0.0.1',
      MQGATE_METRICS_HOST: '127.0.0.1',
    };
    const gate = await start(
      ['gate', '--config', join(EXAMPLES, 'gate.yaml')],
      { ...common, ...ports, MQGATE_TLS_KEY: pki.serverKey, MQGATE_TLS_CERT: pki.serverCert, MQGATE_STORAGE_MODULE: storageModule },
      /mqgate gate listening: (.*)\n/,
    );
    const addr = Object.fromEntries(gate.line[1].split(' ').map((kv) => kv.split('=')));
    const mqttsPort = addr.mqtts.split(':').pop();
    const metricsPort = addr.metrics.split(':').pop();
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);

    const c = await mqttConnect(`mqtts://127.0.0.1:${mqttsPort}`, { ca: pki.read(pki.caCert), servername: 'localhost', clientId: 'cli-1' });
    const reply = new Promise<string>((r) => c.on('message', (_t, p) => r(p.toString())));
    c.publish('echo/HD_echo/1', '{"hello":"cli"}');
    expect(JSON.parse(await reply).Result).toEqual({ hello: 'cli' });
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain('mqgate_requests_total{module="echo",handler="HD_echo",outcome="ok"} 1\n');

    // the gate's StorageHandler is the storage.module factory's (MQGATE_STORAGE_MODULE): a login stores the session through it
    const login = new Promise<string>((r) => c.on('message', (t, p) => t === 'user/HD_login/2' && r(p.toString())));
    c.publish('user/HD_login/2', '{"userId":"alice"}');
    expect(JSON.parse(await login).Error).toBe('');
    expect(readFileSync(storageCalls, 'utf8')).toMatch(/^query alice\nstorage alice\n/);

    const kicked = new Promise<string>((r) => c.on('message', (t, p) => t === 'gate/kick' && r(p.toString())));
    gate.child.kill('SIGTERM');
    expect(await kicked).toBe('{"reason":"server shutting down"}');
    expect(await gate.exit).toBe(0);
    c.end(true);
    modules.child.kill('SIGTERM');
    expect(await modules.exit).toBe(0);
  });
});
