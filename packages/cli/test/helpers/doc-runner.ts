/**
 * Runs the docs' shell blocks (parsed by doc-blocks.ts) in a fresh clone of the repository:
 * the clone itself, the environment its commands get, plain blocks (`bash -e`, exit 0, expected
 * outputs) and background blocks (process groups awaited on their ready line, stopped at the
 * end of the page or at `doc-test: stop`). The convention is in docs-shell.test.ts's header.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, relative, resolve, sep } from 'node:path';
import { outputMatches, substituteAddresses, type DocBlock, type DocCommand } from './doc-blocks';
import { GroupProcess, lastLines } from './process-groups';

/** How long a plain block may run, in ms. */
export const BLOCK_TIMEOUT_MS = 240_000; // the development guide's build, typecheck and lint: 90 s on a loaded 2-core machine
/** How long a background command may take to print its ready line, in ms (`npm ci && npm start` included). */
export const READY_TIMEOUT_MS = 180_000;
/** Lines of output shown when a command fails. */
export const TAIL_LINES = 40;
/** Set in the clone's environment; the docs test refuses to run when it is set (a block ran it on itself). */
export const NESTED_VARIABLE = 'DOCS_TEST_CLONE';

function gitRun(cwd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function gitFailed(cwd: string, args: string[], r: SpawnSyncReturns<string>): Error {
  return new Error(`git ${args.join(' ')} in ${cwd}: ${r.error?.message ?? `exit ${r.status ?? r.signal}`}\n${r.stderr}`);
}

function git(cwd: string, args: string[]): string {
  const r = gitRun(cwd, args);
  if (r.status !== 0) throw gitFailed(cwd, args, r);
  return r.stdout;
}

/**
 * The commit of the working tree's tracked changes, or HEAD when there are none. The index is
 * refreshed first: a file whose stat changed but not its content (touched, or rewritten with the
 * same bytes) makes `git stash create` find changes, then none, and exit 1 with no output.
 */
function workingTreeCommit(top: string): string {
  spawnSync('git', ['update-index', '-q', '--refresh'], { cwd: top, stdio: 'ignore' }); // exits 1 when files did change: fine
  // A stash commit needs a committer; a CI clone may have no user configured.
  const args = ['-c', 'user.name=docs-test', '-c', 'user.email=docs-test@localhost', 'stash', 'create'];
  const r = gitRun(top, args);
  const stash = r.stdout.trim();
  if (r.status === 0 && stash) return stash;
  if ((r.status === 0 || r.status === 1) && !stash && !r.stderr.trim()) return git(top, ['rev-parse', 'HEAD']).trim(); // no changes
  throw gitFailed(top, args, r);
}

/** What {@link makeClone} cloned. */
export interface CloneInfo {
  /** The commit checked out: `git stash create`'s commit of the working tree, or HEAD when the tree is clean. */
  commit: string;
  /** Untracked, not ignored files copied over from the working tree. */
  untracked: string[];
}

/**
 * Clones the repository at `root` into the empty directory `dest` as a user would get it, but with
 * the working tree's changes: `git clone --shared` (objects borrowed, nothing copied), checkout of
 * `git stash create`'s commit (tracked changes, staged or not; HEAD when there are none), then the
 * untracked files that are not ignored. Ignored files (dist/, node_modules/) are not there.
 * @throws Error when `root` is not in a git work tree.
 */
export function makeClone(root: string, dest: string): CloneInfo {
  const top = git(root, ['rev-parse', '--show-toplevel']).trim();
  const commit = workingTreeCommit(top);
  git(top, ['clone', '--quiet', '--shared', '--no-checkout', top, dest]);
  git(dest, ['checkout', '--quiet', '--detach', commit]);
  const untracked = git(top, ['ls-files', '-z', '--others', '--exclude-standard']).split('\0').filter(Boolean);
  for (const file of untracked) {
    mkdirSync(dirname(join(dest, file)), { recursive: true });
    copyFileSync(join(top, file), join(dest, file));
  }
  return { commit, untracked };
}

/** Where the servers the docs' blocks talk to actually are. */
export interface Servers {
  redis: string;
  nats: string;
}

/**
 * Points the example config files of the clone (examples/**\/*.yaml|yml|json, which the docs'
 * blocks pass to `mqgate … --config`) at the throwaway servers, as the blocks' own text is.
 * @returns the files changed, relative to the clone.
 */
export function substituteInExamples(clone: string, servers: Servers): string[] {
  const changed: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(ya?ml|json)$/.test(name)) {
        const text = readFileSync(path, 'utf8');
        const next = substituteAddresses(text, servers);
        if (next !== text) {
          writeFileSync(path, next);
          changed.push(relative(clone, path));
        }
      }
    }
  };
  walk(join(clone, 'examples'));
  return changed;
}

/**
 * The environment of the clone's commands: this process's, without what would make them behave
 * other than for a user (MQGATE_*, REDIS_URL, NATS_URL, jest's and npm's script variables, and the
 * node_modules/.bin directories npm puts on PATH, through which `npx mqgate` could find this
 * checkout's bin), plus npm's quiet offline-first settings (the cache is warm; they change no
 * command) and {@link NESTED_VARIABLE}.
 */
export function cloneEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const keepNpm = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_registry']);
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(MQGATE_|JEST_)/.test(key) || key === 'REDIS_URL' || key === 'NATS_URL' || key === 'INIT_CWD' || key === 'NODE_ENV') continue;
    if (/^npm_/i.test(key) && !keepNpm.has(key)) continue;
    env[key] = value;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => !dir.includes(`node_modules${sep}.bin`))
    .join(delimiter);
  env.npm_config_prefer_offline = 'true';
  env.npm_config_audit = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_update_notifier = 'false';
  env[NESTED_VARIABLE] = '1';
  return env;
}

const MARK = '\u001e';
const MARK_LINE = new RegExp(`${MARK}(\\d+|end)${MARK}\\n`, 'g');

/** `bash -e` script of a plain block: each command after a marker line (on stdout and stderr) naming it. */
export function plainScript(commands: string[]): string {
  const mark = (id: string) => `printf '${MARK}${id}${MARK}\\n'; printf '${MARK}${id}${MARK}\\n' >&2`;
  return [...commands.flatMap((text, i) => [mark(String(i)), text]), mark('end'), ''].join('\n');
}

/** Splits a plain block's stdout at its markers: each command's stdout, and whether the script reached its end. */
export function splitByMarks(stdout: string, count: number): { outputs: string[]; last: number; finished: boolean } {
  const outputs = new Array<string>(count).fill('');
  let current = -1;
  let finished = false;
  let at = 0;
  for (const m of stdout.matchAll(MARK_LINE)) {
    if (current >= 0) outputs[current] += stdout.slice(at, m.index);
    if (m[1] === 'end') finished = true;
    else current = Number(m[1]);
    at = m.index! + m[0].length;
  }
  if (current >= 0 && !finished) outputs[current] += stdout.slice(at);
  return { outputs, last: current, finished };
}

function withoutMarks(text: string): string {
  return text.replace(MARK_LINE, '');
}

function where(block: DocBlock, command?: DocCommand): string {
  return `${block.file}:${command?.line ?? block.line}`;
}

function quoted(command: DocCommand): string {
  return command.text.length > 300 ? `${command.text.slice(0, 300)}…` : command.text;
}

/** A running background command of a page. */
export interface Background {
  block: DocBlock;
  command: DocCommand;
  process: GroupProcess;
}

/** Runs the shell blocks of one clone; keeps the background processes of the current page. */
export class DocRunner {
  private background: Background[] = [];

  constructor(
    readonly clone: string,
    readonly servers: Servers,
    readonly env: NodeJS.ProcessEnv = cloneEnv(),
  ) {}

  private cwdOf(block: DocBlock): string {
    const cwd = resolve(this.clone, block.cwd ?? '.');
    if (cwd !== this.clone && !cwd.startsWith(this.clone + sep)) throw new Error(`${where(block)}: cwd="${block.cwd}" is outside the clone`);
    return cwd;
  }

  /** Runs a plain block: every command with `bash -e`, exit 0, each expected output matched. */
  async runPlain(block: DocBlock): Promise<void> {
    const commands = block.commands.map((c) => substituteAddresses(c.text, this.servers));
    const proc = new GroupProcess(plainScript(commands), this.cwdOf(block), this.env, true);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), BLOCK_TIMEOUT_MS)));
    const code = await Promise.race([proc.exited, timedOut]);
    clearTimeout(timer);
    await proc.stop(); // a `cmd &` of the block lives until the block ends
    const { outputs, last, finished } = splitByMarks(proc.stdout(), commands.length);
    const failing = block.commands[Math.max(last, 0)];
    const tail = () => `--- output (last ${TAIL_LINES} lines) ---\n${lastLines(withoutMarks(proc.output()), TAIL_LINES)}`;
    if (code === 'timeout') {
      throw new Error(`${where(block, failing)}: \`${quoted(failing)}\` still running after ${BLOCK_TIMEOUT_MS / 1000} s (stopped)\n${tail()}`);
    }
    if (code !== 0 || !finished) throw new Error(`${where(block, failing)}: \`${quoted(failing)}\` exited with ${code}\n${tail()}`);
    block.commands.forEach((c, i) => {
      if (c.expected !== undefined && !outputMatches(c.expected, outputs[i])) {
        throw new Error(
          `${where(block, c)}: \`${quoted(c)}\` printed other than its output comment\n--- expected (… is any text) ---\n` +
            `${c.expected}\n--- stdout ---\n${lastLines(outputs[i], TAIL_LINES)}`,
        );
      }
    });
  }

  /**
   * Starts each command of a background block as its own process group and waits for its ready line.
   * @throws Error with the command's output when it exits first or prints no ready line in time (it is stopped then).
   */
  async startBackground(block: DocBlock): Promise<void> {
    for (const command of block.commands) {
      const proc = new GroupProcess(substituteAddresses(command.text, this.servers), this.cwdOf(block), this.env);
      this.background.push({ block, command, process: proc });
      try {
        await proc.waitFor(block.ready, READY_TIMEOUT_MS);
      } catch (err) {
        this.background.pop(); // stopped here: the end of the page does not report it again
        await proc.stop();
        throw new Error(
          `${where(block, command)}: \`${quoted(command)}\` ${(err as Error).message}\n--- output (last ${TAIL_LINES} lines) ---\n${proc.outputTail(TAIL_LINES)}`,
        );
      }
    }
  }

  /** Runs one block by its mode (a skip block is not run). */
  async run(block: DocBlock): Promise<void> {
    if (block.mode === 'run') await this.runPlain(block);
    else if (block.mode === 'background') await this.startBackground(block);
  }

  /** The page's background commands still running. */
  running(): Background[] {
    return this.background.filter((b) => b.process.running);
  }

  /**
   * Stops the page's background processes (all together) and forgets them.
   * @throws Error naming each one that had exited on its own before (a gate that died on a taken port, …).
   */
  async stopBackground(): Promise<void> {
    const all = this.background;
    this.background = [];
    const died = all.filter((b) => !b.process.running);
    await Promise.all(all.map((b) => b.process.stop()));
    if (died.length > 0) {
      const lines = await Promise.all(
        died.map(
          async (b) =>
            `${where(b.block, b.command)}: \`${quoted(b.command)}\` exited with ${await b.process.exited} while the page ran\n` +
            `--- output (last ${TAIL_LINES} lines) ---\n${b.process.outputTail(TAIL_LINES)}`,
        ),
      );
      throw new Error(lines.join('\n'));
    }
  }
}

/** README.md, then every docs/**\/*.md in path order: the pages whose blocks run, relative to `root`. */
export function docPages(root: string): string[] {
  const pages: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(root, dir)).sort()) {
      const path = `${dir}/${name}`;
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else if (name.endsWith('.md')) pages.push(path);
    }
  };
  if (existsSync(join(root, 'docs'))) walk('docs');
  return ['README.md', ...pages];
}
