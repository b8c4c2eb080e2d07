import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DeadlineError, NoServerError, type ServerInfo } from '@mqgate/rpc';
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

/** Starts a module process serving `serverId` of type `proc`; resolves once it prints "ready". */
async function startModule(serverId: string): Promise<ModuleProcess> {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, REDIS_URL: kit.redis.url, PREFIX: kit.prefix, SERVER_ID: serverId, MODULE_TYPE: 'proc', REGISTRY_TTL: '1000', REGISTRY_INTERVAL: '300' },
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
  it('a module killed with SIGKILL mid-request: the caller fails at its deadline, the registry drops it at TTL, a new process takes new calls', async () => {
    const caller = kit.make({ registryTtl: 1000, registryInterval: 300 });
    await caller.ready();
    const left: Array<{ info: ServerInfo; at: number }> = [];
    caller.on('serverLeft', (info) => left.push({ info, at: Date.now() }));

    const first = await startModule('proc@1');
    await waitForServers(caller, 'proc', 1);
    await expect(caller.call({ moduleType: 'proc' }, 'pid', [])).resolves.toBe(first.child.pid);
    expect(caller.servers('proc')[0].meta).toMatchObject({ pid: String(first.child.pid) });

    const started = Date.now();
    const hanging = caller.call({ moduleType: 'proc' }, 'hang', [], { timeout: 2500 }).catch((e: unknown) => e);
    await waitFor(() => first.lines.includes('started hang'), 'the request to be in the module');
    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    await first.exited;

    const err = await hanging;
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(DeadlineError);
    expect(elapsed).toBeGreaterThanOrEqual(2490);
    expect(elapsed).toBeLessThan(3500);

    await waitFor(() => left.length === 1, 'the registry to drop the dead module', 3000);
    expect(left[0].info.serverId).toBe('proc@1');
    expect(left[0].at - killedAt).toBeLessThan(1000 + 300 + 700);
    await expect(caller.call({ serverId: 'proc@1' }, 'pid', [])).rejects.toBeInstanceOf(NoServerError);

    const second = await startModule('proc@2');
    await waitForServers(caller, 'proc', 1);
    const results = await Promise.all(Array.from({ length: 5 }, () => caller.call({ moduleType: 'proc' }, 'pid', [], { timeout: 3000 })));
    expect(results).toEqual(Array(5).fill(second.child.pid));
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
