/**
 * The benchmark suite's smoke run (`node bench/run.mjs --smoke`): every scenario starts and
 * produces numbers, and no child process it started is left running. Not a speed test.
 * Runs the built packages (npm test builds first).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '../../..');

interface Scenario {
  status: 'ok' | 'skipped' | 'failed';
  note?: string;
  error?: string;
  data?: unknown;
  summary?: string;
}
interface Results {
  scenarios: Record<string, Scenario>;
  children: Array<{ name: string; pid: number }>;
  leftRunning: Array<{ name: string; pid: number }>;
  targets: Array<{ target: string; measured: string; verdict: string }>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when some number > 0 appears anywhere in `v`. */
function hasNumbers(v: unknown): boolean {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0;
  if (Array.isArray(v)) return v.some(hasNumbers);
  if (v && typeof v === 'object') return Object.values(v).some(hasNumbers);
  return false;
}

let out: string;
let results: Results;
let exitCode: number | null;
const dir = mkdtempSync(join(tmpdir(), 'mqgate-bench-smoke-'));

beforeAll(async () => {
  const child = spawn(process.execPath, [join(root, 'bench/run.mjs'), '--smoke', '--out', dir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  exitCode = await new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  const m = /^RESULTS_JSON (.+)$/m.exec(out);
  if (!m) throw new Error(`the smoke run printed no RESULTS_JSON line (exit ${exitCode}):\n${out}`);
  results = JSON.parse(readFileSync(m[1].trim(), 'utf8')) as Results;
}, 280_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('the smoke run exits 0 and prints a progress line per scenario', () => {
  expect({ exitCode, tail: exitCode === 0 ? '' : out.slice(-3000) }).toEqual({ exitCode: 0, tail: '' });
  for (const name of Object.keys(results.scenarios)) expect(out).toContain(name);
});

test('every scenario ran and produced numbers (or was skipped for a missing binary or transport)', () => {
  const names = Object.keys(results.scenarios);
  for (const prefix of [
    'request-reply tcp',
    'request-reply ws',
    'open-loop',
    'connection rate (tcp',
    'push fan-out',
    'profile: mqgate',
    'idle memory mqgate tcp',
    'idle memory bare ws',
    'idle memory aedes tcp',
    'connection rate with a Redis',
    'redis storage',
    'redis transport',
    'resume latency, same gate',
    'resume latency across gates',
    'resume memory',
    'resume buffer cost',
  ]) {
    expect(names.some((n) => n.startsWith(prefix))).toBe(true);
  }
  for (const [name, s] of Object.entries(results.scenarios)) {
    expect({ name, status: s.status, error: s.error }).toEqual({ name, status: s.status === 'skipped' ? 'skipped' : 'ok', error: undefined });
    if (s.status === 'skipped') expect(s.note).toMatch(/no Redis|RedisTransport not available|mosquitto/);
    else if (!name.startsWith('setup') && !name.startsWith('teardown'))
      expect({ name, numbers: hasNumbers(s.data) }).toEqual({ name, numbers: true });
  }
  expect(results.targets.length).toBeGreaterThanOrEqual(6);
});

test('no child process is left running', async () => {
  expect(results.children.length).toBeGreaterThan(3);
  expect(results.leftRunning).toEqual([]);
  // give the kernel a moment to reap, then check every PID the runner reported
  await new Promise((r) => setTimeout(r, 500));
  const stillAlive = results.children.filter((c) => alive(c.pid));
  expect(stillAlive).toEqual([]);
});
