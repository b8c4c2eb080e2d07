/**
 * From a fresh clone, every shell block of the docs runs as written (issue 19, items 1 and 2).
 *
 * The clone: `git clone --shared` of this repository into a temp directory, checked out at
 * `git stash create`'s commit of the working tree (HEAD when it is clean) plus the untracked files
 * that are not ignored, so uncommitted docs are tested too; no dist/, no node_modules/.
 *
 * Installing and building (item 1): the clone's install is the README's own first block,
 * `npm ci && npm start` (marked background: it installs, builds, then serves the demo), as a user
 * runs it; nothing is installed or built before it. Before it, the fresh-clone test checks that
 * the committed packages/cli/bin/mqgate.js says to build; right after it,
 * `npx --no-install mqgate --help` must print the command's help with npm's registry pointed at a
 * closed port: the bin was linked at install time, before the build, and npx cannot fall through
 * to the public registry.
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
 * The default ports the pages use (3563, 3653, 9563, 3080, the second gates' 3564, 3654, 9564,
 * 3081, mqtts 8883, wss 8084; checked free first) are used by no other test, so this file runs beside the others
 * (jest maxWorkers 2); each page's processes are stopped before the next page starts its own.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
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

/** The fixed ports the pages' processes listen on (the defaults, and the second gates' own). */
const DOC_PORTS = [3563, 3653, 9563, 3080, 3564, 3654, 9564, 3081, 8883, 8084];

/** The ports of `ports` that another process holds now (a listen on all interfaces fails). */
async function taken(ports: number[]): Promise<number[]> {
  const busy = await Promise.all(
    ports.map(
      (port) =>
        new Promise<boolean>((resolve) => {
          const server = createServer();
          server.once('error', () => resolve(true));
          server.listen(port, () => server.close(() => resolve(false)));
        }),
    ),
  );
  return ports.filter((_p, i) => busy[i]);
}

test('the ports the docs use are free (another demo or gate on this machine would answer the blocks)', async () => {
  expect(await taken(DOC_PORTS)).toEqual([]);
});

test('fresh clone: no build outputs, no node_modules; the committed bin says to build first', async () => {
  clone = join(dir!, 'mqgate');
  makeClone(ROOT, clone);
  expect(['node_modules', 'packages/cli/dist', 'packages/gate/dist'].filter((d) => existsSync(join(clone!, d)))).toEqual([]);
  const servers = { redis: redis!.url, nats: nats!.url };
  substituteInExamples(clone, servers);
  const env = cloneEnv();
  const before = await step('node packages/cli/bin/mqgate.js --help', env, 1);
  expect(before).toMatch(/packages\/cli\/dist\/bin\.js is missing: run `npm run build` first/);
  runner = new DocRunner(clone, servers, env);
});

/**
 * After the README's first block (`npm ci && npm start`: the install, before any build, then the
 * build): `npx --no-install mqgate` finds the bin npm linked at install time, with npm's registry
 * on a closed port so that it could not fall through to the public registry (issue 19 item 1).
 */
async function npxAfterInstall(first: DocBlock): Promise<void> {
  expect(first.commands[0]?.text).toMatch(/^npm ci\b/);
  const offline = { ...ready().env, npm_config_registry: 'http://127.0.0.1:9/' }; // discard port: a request fails at once
  const help = await step('npx --no-install mqgate --help', offline);
  expect(help).toMatch(/^Usage: mqgate /m);
  expect(help).toMatch(/^\s+gate\b[^]*^\s+modules\b/m);
}

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

describe.each(PAGES.filter((p) => p.items.some((i) => i.kind === 'stop' || i.mode !== 'skip')))('$file', ({ file, items }) => {
  const first = items.find((i): i is DocBlock => i.kind === 'block');
  for (const item of items) {
    if (item.kind === 'stop') test(title(item), () => ready().stopBackground(), 30_000);
    else if (item.mode !== 'skip') test(title(item), () => ready().run(item), timeoutOf(item));
    if (file === 'README.md' && first && item === first) {
      test(
        'README.md: after its first block, npx --no-install mqgate --help prints the help, the registry unreachable',
        () => npxAfterInstall(first),
        60_000,
      );
    }
  }
  if (items.some((i) => i.kind === 'block' && i.mode === 'background')) {
    test(`${file}: end of page, its background processes stopped, none had died`, () => ready().stopBackground(), 30_000);
  }
});

describe('after every page', () => {
  test('skipped blocks each give a reason', () => {
    const skipped = PAGES.flatMap((p) => p.items).filter((i): i is DocBlock => i.kind === 'block' && i.mode === 'skip');
    for (const b of skipped) expect(b.reason?.trim()).toBeTruthy();
    if (skipped.length > 0) console.log(`docs blocks not run:\n${skipped.map((b) => `  ${b.file}:${b.line}: ${b.reason}`).join('\n')}`);
  });

  test('no process of the docs blocks is left', () => {
    expect(liveGroups()).toEqual([]);
  });
});
