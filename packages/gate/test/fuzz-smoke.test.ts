/**
 * The protocol fuzzer (fuzz/run.mjs) as a child process, briefly: a clean pass against the
 * gate exits 0 with no crash, hang or failed probe; against a gate made to stall on purpose
 * (`--fault stall`) it exits 1 and writes a reproducer with the seeds, exact bytes and
 * transports of the cases in flight. Runs the built packages (npm test builds first).
 * The clean pass covers every protocol level (3, 4 and 5; the MQTT 5 property crashes of
 * fuzz/findings/ are fixed and have their own test in protocol-v5-malformed-properties).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '../../..');

/** The FUZZ_RESULT line of a run (the fields these tests read). */
interface Result {
  cases: number;
  closedByGate: number;
  byTransport: Record<'tcp' | 'ws', { cases: number }>;
  crashes: number;
  hangs: number;
  probeFailures: number;
  connectErrors: number;
  probes: number;
  rssBefore: number;
  rssAfter: number;
  finding: { kind: string; reproducer: string } | null;
}

interface Run {
  code: number | null;
  out: string;
  result: Result;
}

function fuzz(args: string[]): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(root, 'fuzz/run.mjs'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const m = /^FUZZ_RESULT (.+)$/m.exec(out);
      done({ code, out, result: m ? (JSON.parse(m[1]) as Result) : ({ finding: null } as Result) });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'mqgate-fuzz-smoke-'));
let clean: Run;
let stalled: Run;

beforeAll(async () => {
  [clean, stalled] = await Promise.all([
    fuzz(['--seconds', '4', '--concurrency', '32', '--probe-every', '100', '--out', join(dir, 'clean')]),
    fuzz([
      '--seconds',
      '10',
      '--fault',
      'stall',
      '--fault-after',
      '1500',
      '--concurrency',
      '16',
      '--probe-timeout',
      '1500',
      '--case-timeout',
      '2000',
      '--out',
      join(dir, 'stalled'),
    ]),
  ]);
}, 25_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('a clean pass exits 0: cases over TCP and WebSocket, every probe answered, no crash or hang', () => {
  expect({ code: clean.code, tail: clean.code === 0 ? '' : clean.out.slice(-3000) }).toEqual({ code: 0, tail: '' });
  const r = clean.result;
  expect(r.cases).toBeGreaterThan(200);
  expect(r.byTransport.tcp.cases).toBeGreaterThan(50);
  expect(r.byTransport.ws.cases).toBeGreaterThan(50);
  expect(r.closedByGate).toBeGreaterThan(0);
  expect(r.probes).toBeGreaterThan(1);
  expect({ crashes: r.crashes, hangs: r.hangs, probeFailures: r.probeFailures, connectErrors: r.connectErrors }).toEqual({
    crashes: 0,
    hangs: 0,
    probeFailures: 0,
    connectErrors: 0,
  });
  expect(r.rssBefore).toBeGreaterThan(0);
  expect(r.rssAfter).toBeGreaterThan(0);
  expect(clean.out).toMatch(/crashes\s+0\n\s+hangs\s+0\n\s+probe failures\s+0/);
  expect(readdirSync(join(dir)).includes('clean')).toBe(false); // no reproducer written
});

test('a stalled gate fails the run and leaves a reproducer of the cases in flight', () => {
  expect(stalled.code).toBe(1);
  const finding = stalled.result.finding!;
  expect(['probe', 'hang']).toContain(finding.kind);
  const files = readdirSync(join(dir, 'stalled'));
  expect(files).toHaveLength(1);
  expect(finding.reproducer).toBe(join(dir, 'stalled', files[0]));
  const rep = JSON.parse(readFileSync(finding.reproducer, 'utf8'));
  expect(rep.kind).toBe(finding.kind);
  expect(typeof rep.runSeed).toBe('number');
  expect(rep.cases.length).toBeGreaterThan(0);
  for (const c of rep.cases) {
    expect(['tcp', 'ws']).toContain(c.transport);
    expect([3, 4, 5]).toContain(c.level);
    expect(typeof c.seed).toBe('number');
    expect(c.bytes).toBe(c.chunks.map((ch: { hex: string }) => ch.hex).join(''));
    expect(c.bytes).toMatch(/^([0-9a-f]{2})*$/);
  }
});
