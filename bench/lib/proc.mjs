// Child processes of the runner: every one is registered, killed on exit, failure, Ctrl-C.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpuSeconds } from './cpu.mjs';

export { cpuSeconds };

const children = new Set();
/** Every child the runner ever started: {name, pid}. */
export const started = [];

/** The hard RLIMIT_NOFILE (what `ulimit -n` may be raised to without privileges). */
export function hardFdLimit() {
  try {
    return Number(execFileSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || 1024;
  } catch {
    return 1024;
  }
}
const HARD = hardFdLimit();

/** CPUs this process may run on, and whether taskset exists to pin children to one of them. */
export const CPU_COUNT = (() => {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || 1;
  } catch {
    return 1;
  }
})();
const TASKSET = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
})();
/** Server side on the last CPU, load on the first, when there are 2+ CPUs and taskset. */
export const PINNING = TASKSET && CPU_COUNT >= 2 ? { server: CPU_COUNT - 1, load: 0 } : null;

/**
 * Spawns `command` (argv) through `bash -c 'ulimit -n <hard>; exec …'` so it gets the whole fd
 * limit, with an IPC channel when `ipc` (node children). Output is prefixed with the name.
 */
export function spawnChild(name, argv, { ipc = true, env = {}, quiet = false, cpu } = {}) {
  const quoted = argv.map((a) => `'${String(a).replaceAll("'", "'\\''")}'`).join(' ');
  const pin = cpu !== undefined && TASKSET ? `taskset -c ${cpu} ` : '';
  const child = spawn('bash', ['-c', `ulimit -n ${HARD} 2>/dev/null; exec ${pin}${quoted}`], {
    stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])],
    env: { ...process.env, ...env },
  });
  children.add(child);
  started.push({ name, pid: child.pid });
  const prefix = (stream, out) =>
    stream.on('data', (d) => {
      if (quiet) return;
      for (const line of d.toString().split('\n')) if (line.trim()) out.write(`  [${name}] ${line}\n`);
    });
  prefix(child.stdout, process.stdout);
  prefix(child.stderr, process.stderr);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.exited.then(() => children.delete(child));
  child.benchName = name;
  return child;
}

/** A node child speaking the bench IPC protocol (see lib/common.mjs serveIpc). */
export class NodeChild {
  constructor(name, script, { config = {}, nodeArgs = [], readyTimeout = 30000, cpu } = {}) {
    this.name = name;
    this.child = spawnChild(name, [process.execPath, '--expose-gc', ...nodeArgs, script], { env: { BENCH_CONFIG: JSON.stringify(config) }, cpu });
    this.pid = this.child.pid;
    this.nextId = 1;
    this.waiting = new Map();
    this.child.on('message', (m) => {
      if (m && m.type === 'ready') this.onReady?.(m);
      else if (m && m.id !== undefined) {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        if (m.ok) w.resolve(m.result);
        else w.reject(new Error(`${name}: ${m.error}`));
      }
    });
    this.child.exited.then(({ code, signal }) => {
      const err = new Error(`${name} (pid ${this.pid}) exited (${signal ?? code})`);
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
      this.onReadyFail?.(err);
    });
    this.ready = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name} not ready within ${readyTimeout} ms`)), readyTimeout);
      this.onReady = (m) => {
        clearTimeout(t);
        this.info = m;
        resolve(m);
      };
      this.onReadyFail = (err) => {
        clearTimeout(t);
        reject(err);
      };
    });
  }

  request(cmd, args = {}, timeoutMs = 120000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => (clearTimeout(t), resolve(v)),
        reject: (e) => (clearTimeout(t), reject(e)),
      });
      try {
        this.child.send({ id, cmd, ...args });
      } catch (err) {
        this.waiting.delete(id);
        clearTimeout(t);
        reject(err);
      }
    });
  }

  /** Asks the child to stop (exit 0, so --cpu-prof writes its profile); kills it after `ms`. */
  async stop(ms = 8000) {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.request('stop', {}, ms).catch(() => undefined);
    await stopProcess(this.child, ms);
  }
}

/** Waits up to `ms` for exit, then SIGTERM, then SIGKILL. */
export async function stopProcess(child, ms = 5000, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (signal) child.kill(signal);
  const t = (d) => new Promise((r) => setTimeout(r, d));
  if (await Promise.race([child.exited.then(() => true), t(ms).then(() => false)])) return;
  child.kill('SIGTERM');
  if (await Promise.race([child.exited.then(() => true), t(2000).then(() => false)])) return;
  child.kill('SIGKILL');
  await child.exited;
}

/** Kills every child still running (SIGKILL), synchronously. */
export function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export function liveChildren() {
  return [...children].map((c) => ({ name: c.benchName, pid: c.pid }));
}

/** Machine-wide busy CPU seconds (all CPUs) from /proc/stat, or null. */
export function machineBusySeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - f[3] - f[4]) / 100; // minus idle and iowait
  } catch {
    return null;
  }
}

/** CPU seconds used so far by this process and every child still running. */
export function ourCpuSeconds() {
  const u = process.cpuUsage();
  let s = (u.user + u.system) / 1e6;
  for (const c of children) s += cpuSeconds(c.pid) ?? 0;
  return s;
}

/** RSS bytes of a pid from /proc, or null. */
export function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export { HARD as FD_HARD_LIMIT };
/** Connections one scenario opens at most: the hard fd limit less a margin for everything else. */
export const FD_CAP = HARD - 256;
