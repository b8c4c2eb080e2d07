/**
 * The `mqgate` command over NATS (`transport.type: nats`): config validation, and
 * `mqgate modules` + `mqgate gate` as child processes of the built bin from the example NATS
 * config files, a throwaway nats-server (never 4222) and Redis for the user index and sessions.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getNats, getRedis, mqttConnect, spawnUntil, type NatsUnderTest, type RedisUnderTest } from '@mqgate/test-support';

const ROOT = resolve(__dirname, '../../..');
const BIN = join(ROOT, 'packages/cli/dist/bin.js');
const EXAMPLES = join(ROOT, 'examples');

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tempConfig(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'mqgate-cli-nats-')), 'c.yaml');
  writeFileSync(file, text);
  return file;
}

describe('config with transport.type nats', () => {
  test('missing or bad transport.servers, and a missing Redis for the user index, are errors naming the key; exit 2', () => {
    const missing = run(['gate', '--check', '--config', tempConfig('transport:\n  type: nats\nuserIndex:\n  url: redis://x\n')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain(
      'transport.servers: missing while transport.type is nats; accepted: NATS URL(s) such as nats://127.0.0.1:4222 (or MQGATE_TRANSPORT_SERVERS)',
    );
    const bad = run([
      'gate',
      '--check',
      '--config',
      tempConfig('transport:\n  type: nats\n  servers: [nats://a:4222, "http://b:80"]\nuserIndex:\n  url: redis://x\n'),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain(
      'transport.servers: got "http://b:80"; accepted: NATS URLs (nats://, tls://, ws://, wss://) such as nats://127.0.0.1:4222',
    );
    const noRedis = run(['modules', '--check', '--config', tempConfig('transport:\n  type: nats\n  servers: nats://a:4222\nmodules: [m.js]\n')]);
    expect(noRedis.code).toBe(2);
    expect(noRedis.err).toMatch(/userIndex\.url: missing while transport\.type is nats; accepted: a Redis URL/);
    const typo = run(['gate', '--check', '--config', tempConfig('transport:\n  type: kafka\n')]);
    expect(typo.err).toContain('transport.type: got "kafka"; accepted: one of redis, nats');
  });

  test('--check passes on the NATS examples; NATS_URL-style comma lists from the environment; --print-config masks passwords', () => {
    expect(run(['gate', '--check', '--config', join(EXAMPLES, 'gate-nats.yaml')])).toMatchObject({ code: 0, out: 'mqgate gate: config ok\n' });
    expect(run(['modules', '--check', '--config', join(EXAMPLES, 'modules-nats.yaml')]).code).toBe(0);
    const r = run(['gate', '--print-config', '--config', join(EXAMPLES, 'gate-nats.yaml')], {
      MQGATE_TRANSPORT_SERVERS: 'nats://u:secret@n1:4222,nats://n2:4222',
    });
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('secret');
    expect(r.out).toContain('nats://u:****@n1:4222,nats://n2:4222');
  });
});

describe('mqgate gate and mqgate modules over NATS', () => {
  let nats: NatsUnderTest;
  let redis: RedisUnderTest;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    [nats, redis] = await Promise.all([getNats(), getRedis()]);
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (nats?.owned) await nats.stop();
    if (redis?.owned) await redis.stop();
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

  test('a request over MQTT reaches the echo module in the other process; login and HD_online use the Redis user index; both stop cleanly', async () => {
    const common = {
      MQGATE_TRANSPORT_SERVERS: nats.url,
      MQGATE_USER_INDEX_URL: redis.url,
      MQGATE_TRANSPORT_PREFIX: `mqgate-cli-nats-${process.pid}:`,
      MQGATE_LOG_LEVEL: 'warn',
    };
    const modules = await start(['modules', '--config', join(EXAMPLES, 'modules-nats.yaml')], common, /mqgate modules ready: (.*)\n/);
    expect(modules.line[1]).toBe('user, chat, echo');
    const ports = {
      MQGATE_TCP_PORT: '0',
      MQGATE_WEBSOCKET_PORT: '0',
      MQGATE_METRICS_PORT: '0',
      MQGATE_TCP_HOST: '127.0.0.1',
      MQGATE_METRICS_HOST: '127.0.0.1',
    };
    const gate = await start(['gate', '--config', join(EXAMPLES, 'gate-nats.yaml')], { ...common, ...ports }, /mqgate gate listening: (.*)\n/);
    const addr = Object.fromEntries(gate.line[1].split(' ').map((kv) => kv.split('=')));
    const tcpPort = addr.tcp.split(':').pop();

    const c = await mqttConnect(`mqtt://127.0.0.1:${tcpPort}`, { clientId: 'cli-nats-1' });
    const replies: Record<string, unknown> = {};
    const replied = (id: string) =>
      new Promise<unknown>((r) => {
        const on = (t: string, p: Buffer) => {
          if (!t.endsWith(`/${id}`)) return;
          c.off('message', on);
          r(JSON.parse(p.toString()));
        };
        c.on('message', on);
      });
    const ask = async (topic: string, id: string, body: object) => {
      const reply = replied(id);
      c.publish(`${topic}/${id}`, JSON.stringify(body));
      return (replies[id] = await reply);
    };
    expect(await ask('echo/HD_echo', '1', { hello: 'nats' })).toMatchObject({ Error: '', Result: { hello: 'nats' } });
    expect(await ask('user/HD_login', '2', { userId: 'nora' })).toMatchObject({ Error: '', Result: { userId: 'nora' } });
    expect(await ask('user/HD_online', '3', { userId: 'nora' })).toMatchObject({ Error: '', Result: { userId: 'nora', online: true } });

    const kicked = new Promise<string>((r) => c.on('message', (t, p) => t === 'gate/kick' && r(p.toString())));
    gate.child.kill('SIGTERM');
    expect(await kicked).toBe('{"reason":"server shutting down"}');
    expect(await gate.exit).toBe(0);
    c.end(true);
    modules.child.kill('SIGTERM');
    expect(await modules.exit).toBe(0);
  });
});
