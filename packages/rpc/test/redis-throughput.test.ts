import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { RedisTransport } from '@mqgate/rpc/redis';
import { RedisKit, waitForServers } from './fixtures/redis-test-kit';

// A sanity check, not a benchmark: the rate is printed, only correctness is asserted.
const CALLS = 20_000;
const IN_FLIGHT = 100;

const kit = new RedisKit();
let child: ChildProcess | undefined;

beforeAll(() => kit.start());
afterAll(() => kit.stop());
beforeEach(() => kit.fresh('tput'));
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const c = child;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM'); // a clean stop deregisters; SIGKILL if it does not exit within 3 s
    const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
  child = undefined;
  await kit.closeAll();
});

/** Runs CALLS echo calls, IN_FLIGHT at a time; returns calls per second and latency percentiles. */
async function run(caller: RedisTransport, address: { moduleType: string }): Promise<{ rate: number; p50: number; p99: number; wrong: number }> {
  let next = 0;
  let wrong = 0;
  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < CALLS) {
      const n = next++;
      const t0 = process.hrtime.bigint();
      const result = await caller.call(address, 'echo', [n]);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (result !== n) wrong++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  return { rate: Math.round(CALLS / seconds), p50: latencies[Math.floor(CALLS * 0.5)], p99: latencies[Math.floor(CALLS * 0.99)], wrong };
}

function report(what: string, r: { rate: number; p50: number; p99: number }): void {
  process.stdout.write(
    `RedisTransport throughput (${what}): ${CALLS} calls, ${IN_FLIGHT} in flight: ${r.rate} calls/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms\n`,
  );
}

describe('RedisTransport throughput (printed, not asserted)', () => {
  it('caller and server in this process, separate transports', async () => {
    const server = kit.make();
    const caller = kit.make();
    await server.serve({ serverId: 'echo@1', moduleType: 'echo' }, (_fn, args) => args[0]);
    await waitForServers(caller, 'echo', 1);
    const r = await run(caller, { moduleType: 'echo' });
    report('one process', r);
    expect(r.wrong).toBe(0);
    expect(server.stats().served).toBe(CALLS);
    expect(caller.stats()).toMatchObject({ calls: CALLS, replies: CALLS, deadlines: 0, lateReplies: 0, pending: 0 });
  });

  it('server in a child process', async () => {
    const caller = kit.make();
    await caller.ready();
    child = spawn(process.execPath, [join(__dirname, 'fixtures', 'redis-module-process.mjs')], {
      env: { ...process.env, REDIS_URL: kit.redis.url, PREFIX: kit.prefix, SERVER_ID: 'echo@child', MODULE_TYPE: 'echo' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await waitForServers(caller, 'echo', 1, 10_000);
    const r = await run(caller, { moduleType: 'echo' });
    report('server in a child process', r);
    expect(r.wrong).toBe(0);
    expect(caller.stats()).toMatchObject({ calls: CALLS, replies: CALLS, deadlines: 0 });
  });
});
