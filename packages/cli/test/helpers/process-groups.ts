/**
 * Shell commands run as their own process groups (a new session each, so `npm start`'s npm, sh and
 * node all go together), stopped as groups: SIGTERM, then SIGKILL after {@link STOP_GRACE_MS}, and
 * waited for until no process of the group is left. Every group still alive when the test process
 * exits is SIGKILLed, so a failed or interrupted docs test leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** How long a group gets between SIGTERM and SIGKILL, in ms. */
export const STOP_GRACE_MS = 10_000;
/** How long {@link GroupProcess.stop} waits for the output pipes to close once the group is gone, in ms. */
export const CLOSE_WAIT_MS = 5_000;
/** How much of a process group's output is kept for messages, in characters (the tail). */
export const OUTPUT_KEPT_CHARS = 64_000;

const live = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const pgid of live) signalGroup(pgid, 'SIGKILL');
  };
  process.on('exit', killAll);
  // A signal that ends this process skips 'exit': kill the groups, then die of the signal as before.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killAll();
      process.off(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is gone already
  }
}

/**
 * The pids of the processes of group `pgid` that are not zombies, from /proc (a zombie whose
 * parent died may never be reaped in a container whose pid 1 does not reap; it holds no port).
 */
export function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    // No /proc: ask the kernel whether the group has any process at all.
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') pids.push(Number(entry));
  }
  return pids;
}

/** A shell command running as its own process group. */
export class GroupProcess {
  readonly child: ChildProcess;
  readonly pgid: number;
  /** Resolves with the exit code (or the signal's name) of the shell when it exits. */
  readonly exited: Promise<number | string>;
  /** Resolves once the shell's stdout and stderr are closed: every byte it (and its group) printed has been read. */
  readonly closed: Promise<void>;
  private tail = '';
  private stdoutText = '';
  private readonly listeners = new Set<() => void>();

  /**
   * Starts `bash -e -c script` in `cwd` with `env`, stdin closed.
   * @param keepStdout keep the whole stdout (for expected-output comments); else only the combined tail.
   */
  constructor(script: string, cwd: string, env: NodeJS.ProcessEnv, keepStdout = false) {
    installExitHook();
    this.child = spawn('bash', ['-e', '-c', script], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error(`could not start bash in ${cwd}`);
    this.pgid = this.child.pid;
    live.add(this.pgid);
    const collect = (chunk: Buffer, isStdout: boolean) => {
      const text = chunk.toString();
      if (isStdout && keepStdout) this.stdoutText += text;
      this.tail = (this.tail + text).slice(-OUTPUT_KEPT_CHARS);
      for (const l of this.listeners) l();
    };
    this.child.stdout!.on('data', (c: Buffer) => collect(c, true));
    this.child.stderr!.on('data', (c: Buffer) => collect(c, false));
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => resolve(`spawn error: ${err.message}`));
      this.child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    });
    this.closed = new Promise((resolve) => {
      this.child.once('error', () => resolve());
      this.child.once('close', () => resolve());
    });
  }

  /** True while the shell itself has not exited. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything kept of the output (stdout and stderr, in arrival order; the last {@link OUTPUT_KEPT_CHARS}). */
  output(): string {
    return this.tail;
  }

  /** The whole stdout (only with keepStdout). */
  stdout(): string {
    return this.stdoutText;
  }

  /** The last `n` lines of the output, for messages. */
  outputTail(n = 40): string {
    return lastLines(this.tail, n);
  }

  /**
   * Resolves with the first output line matching `ready`; rejects when the shell exits first or
   * `timeoutMs` passes (the group is then left running: the caller stops it).
   */
  waitFor(ready: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.tail.split('\n').find((l) => ready.test(l));
        if (line === undefined) return false;
        done();
        resolve(line);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`printed no line matching ${ready} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const listener = () => void check();
      if (check()) return;
      this.listeners.add(listener);
      void this.exited.then((code) => {
        if (check()) return;
        done();
        reject(new Error(`exited with ${code} before printing a line matching ${ready}`));
      });
    });
  }

  /**
   * SIGTERM to the group, SIGKILL after {@link STOP_GRACE_MS}; resolves once no process of the
   * group is left and its output is read (or {@link CLOSE_WAIT_MS} later, if a process that left
   * the group still holds the pipes).
   */
  async stop(): Promise<void> {
    await stopGroup(this.pgid);
    await this.exited;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50)); // no event tells when a grandchild of another parent exits
  }
  return true;
}

/** Stops group `pgid` (SIGTERM, then SIGKILL) and waits until none of its processes is left. */
export async function stopGroup(pgid: number): Promise<void> {
  if (groupMembers(pgid).length > 0) {
    signalGroup(pgid, 'SIGTERM');
    if (!(await until(() => groupMembers(pgid).length === 0, STOP_GRACE_MS))) {
      signalGroup(pgid, 'SIGKILL');
      if (!(await until(() => groupMembers(pgid).length === 0, 5_000))) {
        throw new Error(`process group ${pgid} still has processes ${groupMembers(pgid).join(', ')} after SIGKILL`);
      }
    }
  }
  live.delete(pgid);
}

/** Process groups started by this process and not yet stopped. */
export function liveGroups(): number[] {
  return [...live];
}

/** The last `n` lines of `text`. */
export function lastLines(text: string, n: number): string {
  const lines = text.replace(/\n$/, '').split('\n');
  return lines.slice(-n).join('\n');
}
