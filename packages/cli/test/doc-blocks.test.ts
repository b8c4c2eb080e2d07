/**
 * The docs test's Markdown reading (helpers/doc-blocks.ts) on fixtures: fences, the doc-test
 * comment before them, directives, expected-output comments and `…` matching; the runner's
 * marker split; and every page of the repository parses.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_READY, DocBlockError, outputMatches, parseDocBlocks, substituteAddresses, type DocBlock } from './helpers/doc-blocks';
import { docPages, plainScript, splitByMarks } from './helpers/doc-runner';

const FIXTURE = [
  '# A page', // 1
  '', // 2
  '```sh', // 3
  'npm ci && npm start      # a trailing comment is a comment', // 4
  '# {"Trace":"…","Result":1}', // 5
  '# second line', // 6
  '', // 7
  '# a comment after a blank line', // 8
  'echo one \\', // 9
  '  two', // 10
  'cat <<EOF', // 11
  '# not a comment', // 12
  'EOF', // 13
  '```', // 14
  '<!-- doc-test: background ready="modules up" cwd="examples/tls" -->', // 15
  '```bash', // 16
  '# terminal 1', // 17
  'npm start', // 18
  '# terminal 2: a comment, not an output, in a background block', // 19
  'npm start', // 20
  '```', // 21
  '```js', // 22
  'console.log(1)', // 23
  '```', // 24
  '<!-- doc-test: stop -->', // 25
  '<!-- doc-test: skip reason="needs docker" -->', // 26
  '  ~~~~sh', // 27
  '  docker compose up', // 28
  '  ```', // 29
  '  ~~~~', // 30
  'Prose may name `<!-- doc-test: skip -->` inline.', // 31
].join('\n');

describe('parseDocBlocks', () => {
  const items = parseDocBlocks(FIXTURE, 'page.md');
  const blocks = items.filter((i): i is DocBlock => i.kind === 'block');

  test('finds shell blocks and stops in order, with their lines; other languages are not blocks', () => {
    expect(items.map((i) => [i.kind, i.line])).toEqual([
      ['block', 3],
      ['block', 16],
      ['stop', 25],
      ['block', 27],
    ]);
  });

  test('a plain block: commands with continuations and here-documents, output comments right under a command', () => {
    const [plain] = blocks;
    expect(plain).toMatchObject({ mode: 'run', ready: DEFAULT_READY, cwd: undefined });
    expect(plain.commands).toEqual([
      { line: 4, text: 'npm ci && npm start      # a trailing comment is a comment', expected: '{"Trace":"…","Result":1}\nsecond line' },
      { line: 9, text: 'echo one \\\n  two' },
      { line: 11, text: 'cat <<EOF\n# not a comment\nEOF' },
    ]);
  });

  test('background with ready and cwd: comments are never outputs', () => {
    const bg = blocks[1];
    expect(bg).toMatchObject({ mode: 'background', cwd: 'examples/tls' });
    expect(bg.ready.test('mqgate Modules Up: user')).toBe(true);
    expect(bg.ready.test('listening')).toBe(false);
    expect(bg.commands).toEqual([
      { line: 18, text: 'npm start' },
      { line: 20, text: 'npm start' },
    ]);
  });

  test('skip with its reason; an indented ~~~~ fence holds a ``` line and loses its indentation', () => {
    expect(blocks[2]).toMatchObject({ mode: 'skip', reason: 'needs docker', body: 'docker compose up\n```' });
  });

  test.each([
    ['<!-- doc-test: skip -->\n```sh\nx\n```', /page\.md:1: doc-test: skip needs reason/],
    ['<!-- doc-test: backgroud -->\n```sh\nx\n```', /page\.md:1: unknown doc-test word "backgroud"/],
    ['<!-- doc-test: background port="1" -->\n```sh\nx\n```', /unknown doc-test key port/],
    ['<!-- doc-test: background skip reason="x" -->\n```sh\nx\n```', /either background or skip/],
    ['<!-- doc-test: ready="x" -->\n```sh\nx\n```', /ready="…" goes with background/],
    ['<!-- doc-test: cwd="../x" -->\n```sh\nx\n```', /must be a directory inside the repository/],
    ['<!-- doc-test: stop cwd="x" -->', /stop takes nothing else/],
    ['<!-- doc-test: background -->\n\n```sh\nx\n```', /page\.md:1: doc-test comment not right before a shell block/],
    ['<!-- doc-test: background -->\n```js\nx\n```', /page\.md:1: doc-test comment before a `js` block/],
    ['```sh\nx\n', /page\.md:1: the ``` fence is never closed/],
    ['```sh\n# only a comment\n```', /page\.md:1: a shell block with no command/],
    ['```sh\ncat <<EOF\nx\n```', /page\.md:2: here-document <<EOF is not closed/],
  ])('rejects %j', (markdown, message) => {
    expect(() => parseDocBlocks(markdown, 'page.md')).toThrow(DocBlockError);
    expect(() => parseDocBlocks(markdown, 'page.md')).toThrow(message);
  });
});

describe('outputMatches', () => {
  test.each([
    ['{"Trace":"…","Error":"","Result":{"hello":"world"}}', '{"Trace":"3f2a","Error":"","Result":{"hello":"world"}}\n', true],
    ['{"Trace":"…","Error":"","Result":{"hello":"world"}}', '{"Trace":"3f2a","Error":"","Result":{"hello":"World"}}', false],
    ['{"userId":"alice",…}', '{"userId":"alice","settings":{}}', true],
    ['a…b', 'a\nx\nb', true], // … spans lines
    ['a.b', 'axb', false], // only … is a wildcard
    ['line one\nline two', 'line one  \r\nline two\n\n', true], // trailing spaces and newlines ignored
    ['whole', 'whole and more', false], // the whole stdout
    ['', '', true],
  ])('%j against %j: %s', (expected, stdout, result) => {
    expect(outputMatches(expected, stdout)).toBe(result);
  });
});

test('substituteAddresses points the docs Redis and NATS addresses at the test servers, nothing else', () => {
  const servers = { redis: 'redis://127.0.0.1:40001', nats: 'nats://127.0.0.1:40002' };
  expect(substituteAddresses('REDIS_URL=redis://127.0.0.1:6379 NATS_URL=nats://localhost:4222,nats://127.0.0.1 x', servers)).toBe(
    'REDIS_URL=redis://127.0.0.1:40001 NATS_URL=nats://127.0.0.1:40002,nats://127.0.0.1:40002 x',
  );
  expect(substituteAddresses('redis://localhost:6379/2 redis://127.0.0.1:6380 redis://db:6379 nats://127.0.0.1:42220', servers)).toBe(
    'redis://127.0.0.1:40001/2 redis://127.0.0.1:6380 redis://db:6379 nats://127.0.0.1:42220',
  );
});

test("a plain block's stdout splits at the script's markers into each command's stdout", () => {
  const script = plainScript(['echo a', 'printf b', 'true']);
  expect(script.split('\n').filter((_l, i) => i % 2 === 1)).toEqual(['echo a', 'printf b', 'true', '']);
  const m = (id: string) => `\u001e${id}\u001e\n`;
  expect(splitByMarks(`${m('0')}a\n${m('1')}b${m('2')}${m('end')}`, 3)).toEqual({ outputs: ['a\n', 'b', ''], last: 2, finished: true });
  expect(splitByMarks(`${m('0')}a\n${m('1')}partial`, 3)).toEqual({ outputs: ['a\n', 'partial', ''], last: 1, finished: false });
});

test('every page of the repository parses (README.md and docs/**/*.md), each skip with a reason', () => {
  const root = resolve(__dirname, '../../..');
  const pages = docPages(root);
  expect(pages[0]).toBe('README.md');
  for (const page of pages) {
    const items = parseDocBlocks(readFileSync(join(root, page), 'utf8'), page);
    for (const item of items) if (item.kind === 'block' && item.mode === 'skip') expect(item.reason).toBeTruthy();
  }
});
