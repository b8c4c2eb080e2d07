/**
 * From a fresh clone, every shell block of the docs runs as written (issue 19, items 1 and 2).
 *
 * The clone: `git clone --shared` of this repository into a temp directory, checked out at
 * `git stash create`'s commit of the working tree (HEAD when it is clean) plus the untracked files
 * that are not ignored, so uncommitted docs are tested too; no dist/, no node_modules/.
 *
 * The fresh-clone test (item 1): `npm ci --prefer-offline --no-audit --no-fund` in the clone;
 * `npx --no-install mqgate --help` before the build must say to build (the committed
 * bin/mqgate.js is linked; with npm's registry pointed at a closed port, so npx cannot fall through
 * to the public registry); `npm run build`; then `npx --no-install mqgate --help` prints the help.
 * The README's own first block (`npm ci && npm start`, marked background) then runs as written:
 * a second install, which is what a user runs.
 *
 * The docs blocks (item 2): every ```sh (bash, shell) block of README.md, then docs/**\/*.md in path
 * order, runs in the clone, with one HTML comment on the line right before its fence choosing how:
 * - none: the commands run in one `bash -e` in the clone's root and must exit 0 (a `cmd &` of the
 *   block is stopped when the block ends). A command is a line, with `\` continuations and here-
 *   documents. The `# ` comment lines right under a command (no blank line between) are its
 *   expected stdout, `…` matching any text; other comments are comments.
 * - `<!-- doc-test: background ready="regex" -->`: each command is a long-running process started
 *   as its own process group, awaited until a line of its output matches ready (default
 *   /listening|ready|started/i), stopped (SIGTERM, then SIGKILL, until no process of the group is
 *   left) at the end of the page or at a `<!-- doc-test: stop -->` on its own line; one that exited
 *   on its own by then fails the page.
 * - `<!-- doc-test: skip reason="…" -->`: not run; the reasons are printed.
 * - `cwd="dir"` combines with either: the commands run in that directory of the clone.
 * Only the addresses change: redis://127.0.0.1:6379 and nats://127.0.0.1:4222 (localhost forms,
 * without the port too) become throwaway servers on free ports, in the blocks and in the clone's
 * examples/ config files. Commands get this environment without MQGATE_*, REDIS_URL, NATS_URL,
 * npm's script variables and node_modules/.bin on PATH, with npm set to prefer its warm cache.
 * The demo's default ports (3563, 3653, 9563, 3080) are used by no other test, so this file runs
 * beside the others (jest maxWorkers 2).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startNatsServer, startRedisServer, type NatsUnderTest, type RedisUnderTest } from '@mqgate/test-support';
import { parseDocBlocks, type DocBlock, type DocItem } from './helpers/doc-blocks';
import {
  BLOCK_TIMEOUT_MS,
  cloneEnv,
  docPages,
  DocRunner,
  makeClone,
  NESTED_VARIABLE,
  READY_TIMEOUT_MS,
  substituteInExamples,
} from './helpers/doc-runner';
import { GroupProcess, liveGroups, stopGroup } from './helpers/process-groups';

if (process.env[NESTED_VARIABLE]) {
  throw new Error(`the docs test ran inside its own clone (${NESTED_VARIABLE} is set): a docs block runs the tests; mark it doc-test: skip`);
}

const ROOT = resolve(__dirname, '../../..');
const PAGES = docPages(ROOT).map((file) => ({ file, items: parseDocBlocks(readFileSync(join(ROOT, file), 'utf8'), file) }));
const STEP_TIMEOUT_MS = 240_000;

let dir: string | undefined;
let clone: string | undefined;
let runner: DocRunner | undefined;
let redis: RedisUnderTest | undefined;
let nats: NatsUnderTest | undefined;

/** Runs `script` with bash -e in the clone; resolves with the output, rejects with its tail. */
async function step(script: string, env: NodeJS.ProcessEnv, expectCode = 0): Promise<string> {
  const proc = new GroupProcess(script, clone!, env, true);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([proc.exited, new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), STEP_TIMEOUT_MS)))]);
  clearTimeout(timer);
  await proc.stop();
  if (code !== expectCode) throw new Error(`\`${script}\` in the clone: exit ${code}, expected ${expectCode}\n${proc.outputTail()}`);
  return proc.output();
}

beforeAll(async () => {
  [redis, nats] = await Promise.all([startRedisServer(), startNatsServer()]);
  dir = mkdtempSync(join(tmpdir(), 'mqgate-docs-'));
}, 30_000);

afterAll(async () => {
  await runner?.stopBackground().catch(() => undefined); // a failed block's processes; the failure is reported already
  for (const pgid of liveGroups()) await stopGroup(pgid);
  await Promise.all([redis?.stop(), nats?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

test(
  'fresh clone: npm ci links the mqgate bin before any build; after the build npx --no-install mqgate --help prints the help',
  async () => {
    clone = join(dir!, 'mqgate');
    makeClone(ROOT, clone);
    const servers = { redis: redis!.url, nats: nats!.url };
    substituteInExamples(clone, servers);
    const env = cloneEnv();
    await step('npm ci --prefer-offline --no-audit --no-fund', env);
    const offline = { ...env, npm_config_registry: 'http://127.0.0.1:9/' }; // discard port: a registry request fails at once
    const before = await step('npx --no-install mqgate --help', offline, 1);
    expect(before).toMatch(/dist\/bin\.js is missing: run `npm run build` first/);
    await step('npm run build', env);
    const help = await step('npx --no-install mqgate --help', offline);
    expect(help).toMatch(/^Usage: mqgate /m);
    expect(help).toMatch(/\bgate\b[^\n]*\n[\s\S]*\bmodules\b/);
    runner = new DocRunner(clone, servers, env);
  },
  3 * STEP_TIMEOUT_MS,
);

function title(item: DocItem): string {
  if (item.kind === 'stop') return `${item.file}:${item.line} doc-test: stop`;
  const first = item.commands[0]?.text.split('\n')[0] ?? '';
  return `${item.file}:${item.line} ${item.mode === 'run' ? '' : `${item.mode} `}\`${first.length > 90 ? `${first.slice(0, 90)}…` : first}\``;
}

function timeoutOf(block: DocBlock): number {
  return block.mode === 'background' ? block.commands.length * READY_TIMEOUT_MS + 30_000 : BLOCK_TIMEOUT_MS + 30_000;
}

function ready(): DocRunner {
  if (!runner) throw new Error('no clone to run in: the fresh-clone test failed');
  return runner;
}

describe.each(PAGES)('$file', ({ file, items }) => {
  for (const item of items) {
    if (item.kind === 'stop') test(title(item), () => ready().stopBackground(), 30_000);
    else if (item.mode !== 'skip') test(title(item), () => ready().run(item), timeoutOf(item));
  }
  test(`${file}: end of page, its background processes stopped, none had died`, () => ready().stopBackground(), 30_000);
});

test('skipped blocks each give a reason', () => {
  const skipped = PAGES.flatMap((p) => p.items).filter((i): i is DocBlock => i.kind === 'block' && i.mode === 'skip');
  for (const b of skipped) expect(b.reason?.trim()).toBeTruthy();
  if (skipped.length > 0) console.log(`docs blocks not run:\n${skipped.map((b) => `  ${b.file}:${b.line}: ${b.reason}`).join('\n')}`);
});

test('no process of the docs blocks is left', () => {
  expect(liveGroups()).toEqual([]);
});
