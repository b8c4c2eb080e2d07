/**
 * The docs test's runner (helpers/doc-runner.ts) on fixture blocks in a temp directory, with
 * real bash and node child processes: expected outputs, failures naming file, line and command
 * with the output tail, cwd, address substitution, background ready lines, and no process left.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocBlocks, type DocBlock } from './helpers/doc-blocks';
import { cloneEnv, DocRunner, makeClone, substituteInExamples } from './helpers/doc-runner';
import { groupMembers, liveGroups } from './helpers/process-groups';

let dir: string;
let runner: DocRunner;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mqgate-doc-runner-'));
  mkdirSync(join(dir, 'sub'));
  runner = new DocRunner(dir, { redis: 'redis://127.0.0.1:40001', nats: 'nats://127.0.0.1:40002' }, cloneEnv());
});

afterAll(async () => {
  await runner.stopBackground().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

/** The first block of `markdown`, parsed as page.md. */
function block(markdown: string): DocBlock {
  return parseDocBlocks(markdown, 'page.md')[0] as DocBlock;
}

test('a plain block passes when every command exits 0 and prints its output comment; cwd and addresses apply', async () => {
  await runner.run(
    block(
      [
        '<!-- doc-test: cwd="sub" -->',
        '```sh',
        'export X=$(echo kept)',
        'echo "$X" REDIS_URL=redis://127.0.0.1:6379 nats://localhost:4222',
        '# kept REDIS_URL=redis://127.0.0.1:40001 nats://127.0.0.1:40002',
        'pwd',
        '# …/sub',
        '```',
      ].join('\n'),
    ),
  );
});

test('a failing command is named by file, line and text, with the output tail', async () => {
  const error = await runner.run(block('\n```sh\necho one\necho before >&2\nfalse\necho never\n```')).catch((err: Error) => err);
  expect(error).toBeInstanceOf(Error);
  const [head, ...tail] = (error as Error).message.split('\n');
  expect(head).toBe('page.md:5: `false` exited with 1');
  expect(tail.sort()).toEqual(['--- output (last 40 lines) ---', 'before', 'one']); // stdout and stderr: two pipes, either first
});

test('an output other than the comment fails with both shown', async () => {
  const run = runner.run(block('```sh\necho \'{"Trace":"x","Result":2}\'\n# {"Trace":"…","Result":1}\n```'));
  await expect(run).rejects.toThrow(
    'page.md:2: `echo \'{"Trace":"x","Result":2}\'` printed other than its output comment\n--- expected (… is any text) ---\n' +
      '{"Trace":"…","Result":1}\n--- stdout ---\n{"Trace":"x","Result":2}',
  );
});

test("a plain block's `cmd &` is stopped with the block", async () => {
  await runner.run(block('```sh\nsleep 300 &\necho started\n```'));
  expect(liveGroups()).toEqual([]);
});

const node = (js: string) => `node -e ${JSON.stringify(js)}`;

test('background commands start in order, each awaited on its ready line, and stop as process groups', async () => {
  await runner.run(
    block(
      [
        '<!-- doc-test: background ready="up on \\d+" -->',
        '```sh',
        `${node("console.log('up on 1'); setInterval(() => {}, 1000)")}`,
        `sleep 300 & ${node('console.log("up on " + 2); setInterval(() => {}, 1000)')}`,
        '```',
      ].join('\n'),
    ),
  );
  const running = runner.running();
  expect(running.map((b) => b.command.line)).toEqual([3, 4]);
  const groups = running.map((b) => b.process.pgid);
  expect(groups[1] && groupMembers(groups[1]).length).toBeGreaterThanOrEqual(2); // bash, sleep, node
  await runner.stopBackground();
  expect(groups.map((g) => groupMembers(g))).toEqual([[], []]);
  expect(liveGroups()).toEqual([]);
});

test('a background command that exits before its ready line fails with its output', async () => {
  const run = runner.run(block(`<!-- doc-test: background -->\n\`\`\`sh\n${node("console.error('EADDRINUSE 3563'); process.exit(1)")}\n\`\`\``));
  await expect(run).rejects.toThrow(
    /^page\.md:3: `node -e .*` exited with 1 before printing a line matching \/listening\|ready\|started\/i\n[^]*EADDRINUSE 3563/,
  );
  await runner.stopBackground(); // nothing left to stop, nothing reported twice
});

test('a background command that died while the page ran fails the stop', async () => {
  await runner.run(
    block(`<!-- doc-test: background -->\n\`\`\`sh\n${node("console.log('listening'); setTimeout(() => process.exit(3), 50)")}\n\`\`\``),
  );
  await runner.running()[0].process.exited;
  await expect(runner.stopBackground()).rejects.toThrow(/^page\.md:3: `node -e .*` exited with 3 while the page ran/);
  expect(liveGroups()).toEqual([]);
});

test('makeClone: the working tree as committed plus its changes and untracked files, nothing ignored; examples pointed at the servers', () => {
  const repo = join(dir, 'repo');
  mkdirSync(join(repo, 'examples'), { recursive: true });
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, encoding: 'utf8' });
  git('init', '-q');
  writeFileSync(join(repo, '.gitignore'), 'dist/\n');
  writeFileSync(join(repo, 'README.md'), 'committed\n');
  writeFileSync(join(repo, 'examples', 'gate.yaml'), 'url: redis://127.0.0.1:6379\nservers: [nats://127.0.0.1:4222]\n');
  git('add', '.');
  git('commit', '-qm', 'one');
  writeFileSync(join(repo, 'README.md'), 'changed, not committed\n');
  mkdirSync(join(repo, 'docs'));
  writeFileSync(join(repo, 'docs', 'new.md'), 'untracked\n');
  mkdirSync(join(repo, 'dist'));
  writeFileSync(join(repo, 'dist', 'out.js'), 'ignored\n');

  const dest = join(dir, 'clone');
  const info = makeClone(repo, dest);
  expect(info.untracked).toEqual(['docs/new.md']);
  expect(readFileSync(join(dest, 'README.md'), 'utf8')).toBe('changed, not committed\n');
  expect(readFileSync(join(dest, 'docs', 'new.md'), 'utf8')).toBe('untracked\n');
  expect(existsSync(join(dest, 'dist'))).toBe(false);
  expect(git('status', '--porcelain')).toBe(' M README.md\n?? docs/\n'); // the source is left as it was
  expect(substituteInExamples(dest, { redis: 'redis://127.0.0.1:40001', nats: 'nats://127.0.0.1:40002' })).toEqual(['examples/gate.yaml']);
  expect(readFileSync(join(dest, 'examples', 'gate.yaml'), 'utf8')).toBe('url: redis://127.0.0.1:40001\nservers: [nats://127.0.0.1:40002]\n');
});

test('makeClone: a tracked file touched but not changed (stat differs, bytes do not) clones HEAD', () => {
  const repo = join(dir, 'repo-touched');
  mkdirSync(repo);
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, encoding: 'utf8' });
  git('init', '-q');
  writeFileSync(join(repo, 'README.md'), 'committed\n');
  git('add', '.');
  git('commit', '-qm', 'one');
  utimesSync(join(repo, 'README.md'), new Date('2030-01-01'), new Date('2030-01-01')); // `git stash create` alone exits 1 here, silently
  const head = git('rev-parse', 'HEAD').trim();
  const info = makeClone(repo, join(dir, 'clone-touched'));
  expect(info.commit).toBe(head);
  expect(readFileSync(join(dir, 'clone-touched', 'README.md'), 'utf8')).toBe('committed\n');
});
