/**
 * The runnable resume example (examples/resume.mjs) against a real demo process:
 * it logs in, drops its connection, gets whispers while detached, resumes and prints the
 * replayed pushes; its printed output is checked line by line. docs/guides/resume.md shows
 * that file verbatim (checked here too), so the snippet cannot rot. Runs the built demo.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startDemo, type DemoProcess } from './helpers/demo-process';

const root = resolve(__dirname, '../../..');
const EXAMPLE = join(root, 'examples', 'resume.mjs');

let demo: DemoProcess | undefined;
afterEach(async () => {
  await demo?.stop();
  demo = undefined;
});

/** Runs the example against `url`; resolves with its exit code and output (killed after 20 s). */
function runExample(url: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [EXAMPLE, url], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((done) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, out });
    }),
  );
}

test('examples/resume.mjs resumes against the demo and prints the replayed whispers in order', async () => {
  demo = await startDemo({ MQGATE_GATE_RESUME_WINDOW: '30000' });
  const { code, out } = await runExample(demo.tcpUrl);
  expect({ code, out }).toEqual({ code: 0, out: expect.any(String) });
  const sid = /session ([0-9a-f]{32}),/.exec(out)?.[1];
  expect(sid).toBeDefined();
  expect(out.trimEnd().split('\n')).toEqual([
    `logged in as alice; gate/session push: session ${sid}, token r1.…, expires in 30 s`,
    'alice dropped: offline, her session detached on the gate',
    'bob whispers "are you there?": delivered 1',
    'bob whispers "call me back": delivered 1',
    `resumed: {"userId":"alice","sessionId":"${sid}","settings":{"room":"lobby"},"recovered":true,"replayed":2,"lost":0}`,
    'replayed: chat/onWhisper {"from":"bob","text":"are you there?"}',
    'replayed: chat/onWhisper {"from":"bob","text":"call me back"}',
    'in this order: gate/HD_resume/7, chat/onWhisper, chat/onWhisper, gate/session',
    `new token for session ${sid}: a fresh one, the old one is used up`,
    'the old token again: resume token expired or already used: log in again',
  ]);
}, 45_000);

test('docs/guides/resume.md shows examples/resume.mjs verbatim', () => {
  const guide = readFileSync(join(root, 'docs', 'guides', 'resume.md'), 'utf8');
  const file = readFileSync(EXAMPLE, 'utf8');
  expect(guide).toContain('```js\n' + file + '```\n');
});
