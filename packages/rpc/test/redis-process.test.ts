import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NoServerError, type ServerInfo } from '@mqgate/rpc';
import { ServerLostError } from '@mqgate/rpc/redis';
import { RedisKit, waitFor, waitForServers } from './fixtures/redis-test-kit';

// Module processes run the built package: `npx tsc -b packages/rpc` (npm test builds first).
const FIXTURE = join(__dirname, 'fixtures', 'redis-module-process.mjs');
const DIST = join(__dirname, '..', 'dist', 'redis', 'transport.js');

const kit = new RedisKit();
const children = new Set<ChildProcess>();

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npx tsc -b packages/rpc\` first`);
  await kit.start();
});
afterAll(() => kit.stop());
beforeEach(() => kit.fresh('proc'));
afterEach(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGTERM: a clean stop deregisters; SIGKILL if it does not exit within 3 s.
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
  }
  children.clear();
  await kit.closeAll();
});

interface ModuleProcess {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

/** Starts a module process serving `serverId` of type `proc` (registry TTL / interval as given, default 1 000 / 300 ms); resolves once it prints "ready". */
async function startModule(
  serverId: string,
  registry: { REGISTRY_TTL?: string; REGISTRY_INTERVAL?: string } = { REGISTRY_TTL: '1000', REGISTRY_INTERVAL: '300' },
): Promise<ModuleProcess> {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, REDIS_URL: kit.redis.url, PREFIX: kit.prefix, SERVER_ID: serverId, MODULE_TYPE: 'proc', ...registry },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const lines: string[] = [];
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitFor(() => lines.includes('ready') || child.exitCode !== null, `${serverId} to be ready`, 10_000);
  if (!lines.includes('ready')) throw new Error(`module process ${serverId} failed: ${stderr}`);
  return { child, lines, exited };
}

describe('RedisTransport with module processes', () => {
  it('a module killed with SIGKILL with calls in flight: they fail within about 1 s ("module unavailable"), new calls at once, long before the registry TTL; a new process takes new calls', async () => {
    // The default registry TTL (20 s): only the heartbeat can notice the death this early.
    const caller = kit.make();
    await caller.ready();
    const left: Array<{ info: ServerInfo; at: number }> = [];
    caller.on('serverLeft', (info) => left.push({ info, at: Date.now() }));

    const first = await startModule('proc@1', {});
    await waitForServers(caller, 'proc', 1);
    await expect(caller.call({ moduleType: 'proc' }, 'pid', [])).resolves.toBe(first.child.pid);
    expect(caller.servers('proc')[0].meta).toMatchObject({ pid: String(first.child.pid), heartbeat: '250' });

    // 200 calls in flight: to the type, to the server id and by sticky key.
    const inFlight = Array.from({ length: 200 }, (_, i) => {
      const to = i % 3 === 0 ? { moduleType: 'proc' } : i % 3 === 1 ? { serverId: 'proc@1' } : { moduleType: 'proc', key: `k${i}` };
      return caller.call(to, 'hang', [], { timeout: 10_000 }).catch((e: unknown) => e);
    });
    await waitFor(() => first.lines.filter((l) => l === 'started hang').length === 200, 'the calls to be in the module');
    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    await first.exited;

    const errors = await Promise.all(inFlight);
    const elapsed = Date.now() - killedAt;
    expect(elapsed).toBeLessThan(1600);
    for (const err of errors) {
      expect(err).toBeInstanceOf(ServerLostError);
      expect(err).toMatchObject({ code: 'NO_SERVER' });
      expect((err as Error).message).toMatch(
        /^module unavailable: server proc@1 \(type proc\) stopped answering \(no heartbeat for 1000 ms\) while call hang was in flight/,
      );
    }
    expect(left.map((l) => l.info.serverId)).toEqual(['proc@1']);
    expect(left[0].at - killedAt).toBeLessThan(1600);
    const started = Date.now();
    await expect(caller.call({ serverId: 'proc@1' }, 'pid', [])).rejects.toBeInstanceOf(NoServerError);
    await expect(caller.call({ moduleType: 'proc' }, 'pid', [])).rejects.toThrow('Service(type:proc) not found');
    expect(Date.now() - started).toBeLessThan(500); // at once: no deadline, no registry TTL

    const second = await startModule('proc@2', {});
    await waitForServers(caller, 'proc', 1);
    const results = await Promise.all(Array.from({ length: 5 }, () => caller.call({ moduleType: 'proc' }, 'pid', [], { timeout: 3000 })));
    expect(results).toEqual(Array(5).fill(second.child.pid));
  });

  it('a module killed with SIGKILL while another of its type lives: calls by id to the dead one fail at once, calls to the type go to the survivor', async () => {
    const caller = kit.make();
    const a = await startModule('proc@a', {});
    const b = await startModule('proc@b', {});
    await waitForServers(caller, 'proc', 2);
    const toDead = caller.call({ serverId: 'proc@a' }, 'hang', [], { timeout: 10_000 }).catch((e: unknown) => e);
    await waitFor(() => a.lines.includes('started hang'), 'the call to be in proc@a');
    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    expect(await toDead).toBeInstanceOf(ServerLostError);
    expect(Date.now() - killedAt).toBeLessThan(1600);
    expect(caller.servers('proc').map((s) => s.serverId)).toEqual(['proc@b']);
    const pids = await Promise.all(Array.from({ length: 10 }, (_, i) => caller.call({ moduleType: 'proc', key: `k${i}` }, 'pid', [])));
    expect(pids).toEqual(Array(10).fill(b.child.pid));
  });

  it('a module stopped with SIGTERM deregisters at once (no wait for the TTL) and exits cleanly', async () => {
    const caller = kit.make({ registryTtl: 5000, registryInterval: 1000 });
    await caller.ready();
    const mod = await startModule('proc@1');
    await waitForServers(caller, 'proc', 1);
    await expect(caller.call({ serverId: 'proc@1' }, 'echo', [{ hello: 'process' }])).resolves.toEqual({ hello: 'process' });
    const stoppedAt = Date.now();
    mod.child.kill('SIGTERM');
    await waitForServers(caller, 'proc', 0, 3000);
    expect(Date.now() - stoppedAt).toBeLessThan(1500);
    await expect(mod.exited).resolves.toBe(0);
    await expect(caller.call({ moduleType: 'proc' }, 'pid', [])).rejects.toBeInstanceOf(NoServerError);
  });
});
