/**
 * The docs' shell blocks as the docs test reads them: every fenced ```sh (or bash, shell) block of a
 * Markdown page, with the one `<!-- doc-test: … -->` comment on the line right before its fence,
 * split into commands and the expected-output comments under them. Pure text work; running is
 * doc-runner.ts's job.
 *
 * The convention (also in docs-shell.test.ts's header):
 * - a command is one line, with `\` line continuations and `<<EOF` here-documents joined to it;
 *   blank lines and `#` comment lines are not commands;
 * - in a plain block, the `# ` comment lines right under a command (no blank line between) are its
 *   expected stdout, `…` matching any text; anywhere else a comment is just a comment;
 * - directives: `background` (each command is a long-running process, ready when a line of its
 *   output matches `ready="<regex>"`, default {@link DEFAULT_READY}), `skip reason="…"` (not run),
 *   `cwd="dir"` (relative to the clone's root), and `stop` on its own line (not before a block):
 *   stop the background processes started so far on the page.
 */

/** What the runner does with a block. */
export type BlockMode = 'run' | 'background' | 'skip';

/** Default ready line of a background command (a case-insensitive match anywhere in a line). */
export const DEFAULT_READY = /listening|ready|started/i;

/** Shell languages whose blocks run; other fences (js, ts, yaml, json, …) are not run. */
export const SHELL_LANGS: ReadonlySet<string> = new Set(['sh', 'bash', 'shell']);

/** One command of a block. */
export interface DocCommand {
  /** 1-based line of the command's first line in the page. */
  line: number;
  /** The command as written (continuation and here-document lines joined with `\n`). */
  text: string;
  /** The expected stdout from the `# ` comment lines right under it (joined with `\n`), if any. */
  expected?: string;
}

/** A fenced shell block. */
export interface DocBlock {
  kind: 'block';
  /** The page, as given to {@link parseDocBlocks} (a path relative to the repository root). */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  mode: BlockMode;
  /** Why a `skip` block is not run (required with skip). */
  reason?: string;
  /** Ready line of each background command. */
  ready: RegExp;
  /** Directory the commands run in, relative to the clone's root (default: the root). */
  cwd?: string;
  /** The block's lines between the fences, as written (indentation of the fence removed). */
  body: string;
  commands: DocCommand[];
}

/** A `<!-- doc-test: stop -->` comment on its own. */
export interface DocStop {
  kind: 'stop';
  file: string;
  line: number;
}

export type DocItem = DocBlock | DocStop;

/** A malformed doc-test comment or block; the message starts with `file:line:`. */
export class DocBlockError extends Error {}

const DIRECTIVE_LINE = /^\s*<!--\s*doc-test:(.*?)-->\s*$/;
const OPEN_FENCE = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const DIRECTIVE_WORD = /\s*([a-z]+)(?:="([^"]*)")?/y;
const FLAGS = new Set(['background', 'skip', 'stop']);
const KEYS = new Set(['reason', 'ready', 'cwd']);

interface Directive {
  line: number;
  flags: Set<string>;
  values: Map<string, string>;
}

function parseDirective(text: string, file: string, line: number): Directive {
  const at = `${file}:${line}:`;
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const rest = text.trim();
  DIRECTIVE_WORD.lastIndex = 0;
  while (DIRECTIVE_WORD.lastIndex < rest.length) {
    const start = DIRECTIVE_WORD.lastIndex;
    const m = DIRECTIVE_WORD.exec(rest);
    if (!m) throw new DocBlockError(`${at} cannot read the doc-test comment at "${rest.slice(start)}" (expected words and key="value")`);
    const [, word, value] = m;
    if (value === undefined) {
      if (!FLAGS.has(word)) throw new DocBlockError(`${at} unknown doc-test word "${word}" (known: ${[...FLAGS, ...KEYS].join(', ')})`);
      flags.add(word);
    } else {
      if (!KEYS.has(word)) throw new DocBlockError(`${at} unknown doc-test key ${word}="…" (known: ${[...KEYS].join(', ')})`);
      values.set(word, value);
    }
  }
  if (flags.size === 0 && values.size === 0) throw new DocBlockError(`${at} empty doc-test comment`);
  if (flags.has('stop') && (flags.size > 1 || values.size > 0)) throw new DocBlockError(`${at} doc-test: stop takes nothing else`);
  if (flags.has('background') && flags.has('skip')) throw new DocBlockError(`${at} a block is either background or skip`);
  if (flags.has('skip') && !values.get('reason')?.trim()) throw new DocBlockError(`${at} doc-test: skip needs reason="…"`);
  if (values.has('reason') && !flags.has('skip')) throw new DocBlockError(`${at} reason="…" goes with skip`);
  if (values.has('ready') && !flags.has('background')) throw new DocBlockError(`${at} ready="…" goes with background`);
  const cwd = values.get('cwd');
  if (cwd !== undefined && (cwd === '' || cwd.startsWith('/') || cwd.split('/').includes('..'))) {
    throw new DocBlockError(`${at} cwd="${cwd}" must be a directory inside the repository, relative to its root`);
  }
  return { line, flags, values };
}

/** The here-document delimiters a command line opens (`<<EOF`, `<<-'EOF'`, `<<"EOF"`), in order. */
function hereDocs(line: string): { word: string; strip: boolean }[] {
  const out: { word: string; strip: boolean }[] = [];
  for (const m of line.matchAll(/(?<!<)<<(?!<)(-?)\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\2/g)) out.push({ word: m[3], strip: m[1] === '-' });
  return out;
}

/** Splits a block's lines into commands and expected outputs (see the file header). */
export function parseCommands(lines: string[], firstLine: number, mode: BlockMode): DocCommand[] {
  const commands: DocCommand[] = [];
  let last: DocCommand | undefined; // the command an output comment would belong to
  for (let i = 0; i < lines.length; i++) {
    const trimmed = lines[i].trim();
    if (trimmed === '') {
      last = undefined;
      continue;
    }
    if (trimmed.startsWith('#')) {
      if (last && mode === 'run') {
        const said = trimmed.replace(/^# ?/, '');
        last.expected = last.expected === undefined ? said : `${last.expected}\n${said}`;
      } else last = undefined;
      continue;
    }
    const line = firstLine + i;
    const parts = [lines[i]];
    while (/(^|[^\\])(\\\\)*\\$/.test(parts[parts.length - 1]) && i + 1 < lines.length) parts.push(lines[++i]);
    for (const doc of hereDocs(parts.join('\n'))) {
      for (;;) {
        if (i + 1 >= lines.length) throw new DocBlockError(`${line}: here-document <<${doc.word} is not closed in the block`);
        const next = lines[++i];
        parts.push(next);
        if ((doc.strip ? next.replace(/^\t+/, '') : next) === doc.word) break;
      }
    }
    last = { line, text: parts.join('\n') };
    commands.push(last);
  }
  return commands;
}

/**
 * Every shell block and `stop` comment of a Markdown page, in order.
 * @param file the page's name in messages (a path relative to the repository root).
 * @throws DocBlockError on an unknown or misplaced doc-test comment, an unclosed fence, or a block with no command.
 */
export function parseDocBlocks(markdown: string, file: string): DocItem[] {
  const lines = markdown.split(/\r?\n/);
  const items: DocItem[] = [];
  let pending: Directive | undefined;
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const directive = DIRECTIVE_LINE.exec(lines[i]);
    if (directive) {
      if (pending) throw new DocBlockError(`${file}:${pending.line}: doc-test comment not right before a shell block`);
      const d = parseDirective(directive[1], file, lineNo);
      if (d.flags.has('stop')) items.push({ kind: 'stop', file, line: lineNo });
      else pending = d;
      continue;
    }
    const fence = OPEN_FENCE.exec(lines[i]);
    if (!fence) {
      if (pending) throw new DocBlockError(`${file}:${pending.line}: doc-test comment not right before a shell block`);
      continue;
    }
    const [, indent, marks, lang] = fence;
    const close = new RegExp(`^\\s*${marks[0] === '`' ? '`' : '~'}{${marks.length},}\\s*$`);
    const body: string[] = [];
    let end = i + 1;
    while (end < lines.length && !close.test(lines[end])) {
      const l = lines[end];
      body.push(l.startsWith(indent) ? l.slice(indent.length) : l.trimStart());
      end++;
    }
    if (end >= lines.length) throw new DocBlockError(`${file}:${lineNo}: the ${marks} fence is never closed`);
    const d = pending;
    pending = undefined;
    i = end;
    if (!SHELL_LANGS.has(lang.toLowerCase())) {
      if (d) throw new DocBlockError(`${file}:${d.line}: doc-test comment before a \`${lang || 'plain'}\` block (only sh blocks run)`);
      continue;
    }
    const mode: BlockMode = d?.flags.has('skip') ? 'skip' : d?.flags.has('background') ? 'background' : 'run';
    const ready = d?.values.get('ready');
    let commands: DocCommand[];
    try {
      commands = parseCommands(body, lineNo + 1, mode);
    } catch (err) {
      throw err instanceof DocBlockError ? new DocBlockError(`${file}:${(err as Error).message}`) : err;
    }
    if (commands.length === 0 && mode !== 'skip') throw new DocBlockError(`${file}:${lineNo}: a shell block with no command`);
    items.push({
      kind: 'block',
      file,
      line: lineNo,
      mode,
      reason: d?.values.get('reason'),
      ready: ready === undefined ? DEFAULT_READY : new RegExp(ready, 'i'),
      cwd: d?.values.get('cwd'),
      body: body.join('\n'),
      commands,
    });
  }
  if (pending) throw new DocBlockError(`${file}:${pending.line}: doc-test comment not right before a shell block`);
  return items;
}

/**
 * True when `stdout` matches an expected-output comment: the same text, `…` matching any text
 * (across lines too); trailing spaces of each line and trailing newlines are ignored on both sides.
 */
export function outputMatches(expected: string, stdout: string): boolean {
  const tidy = (s: string) =>
    s
      .replace(/\r\n/g, '\n')
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n')
      .replace(/\n+$/, '');
  const pattern = tidy(expected)
    .split('…')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[\\s\\S]*');
  return new RegExp(`^${pattern}$`).test(tidy(stdout));
}

/**
 * `text` with the Redis and NATS addresses of the docs (`redis://127.0.0.1:6379`,
 * `nats://localhost:4222`, with or without the default port) pointed at the given servers.
 */
export function substituteAddresses(text: string, servers: { redis: string; nats: string }): string {
  const base = (url: string) => url.replace(/\/$/, '');
  return text
    .replace(/redis:\/\/(?:127\.0\.0\.1|localhost)(?::6379)?(?![\w:.])/g, base(servers.redis))
    .replace(/nats:\/\/(?:127\.0\.0\.1|localhost)(?::4222)?(?![\w:.])/g, base(servers.nats));
}
