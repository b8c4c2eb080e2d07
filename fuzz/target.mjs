// Starts the gate under fuzz (fuzz/gate.mjs) as a child process, reads its ports, reports
// its RSS, and tells when it exits on its own (a crash): `target.exited` resolves then with
// the code, signal and the tail of its output.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GATE = join(dirname(fileURLToPath(import.meta.url)), 'gate.mjs');
const OUTPUT_TAIL = 64 * 1024;

/** Resident set size of `pid` in bytes (Linux /proc), or undefined. */
export function rssOf(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @param opts.connectTimeout the gate's connectTimeout, ms
 * @param opts.fault 'stall' | 'crash' | undefined (see gate.mjs)
 * @param opts.faultAfter ms
 * @returns {Promise<{ pid, tcpPort, wsPort, rss(): number|undefined, output(): string,
 *   exited: Promise<{ code, signal, output }>, alive(): boolean, stop(): Promise<void> }>}
 */
export function startTarget(opts = {}) {
  const args = [GATE, '--connect-timeout', String(opts.connectTimeout ?? 500)];
  if (opts.fault) args.push('--fault', opts.fault, '--fault-after', String(opts.faultAfter ?? 1500));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d) => {
    out += d;
    if (out.length > 2 * OUTPUT_TAIL) out = out.slice(-OUTPUT_TAIL);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let stopping = false;
  let running = true;
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      running = false;
      resolve({ code, signal, expected: stopping, output: out.slice(-OUTPUT_TAIL) });
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fuzz gate did not start within 20 s:\n${out}`));
    }, 20_000);
    const onData = () => {
      const m = /^FUZZ_GATE (.+)$/m.exec(out);
      if (!m) return;
      child.stdout.off('data', onData);
      clearTimeout(timer);
      const { tcp, ws } = JSON.parse(m[1]);
      resolve({
        pid: child.pid,
        tcpPort: tcp,
        wsPort: ws,
        rss: () => rssOf(child.pid),
        output: () => out.slice(-OUTPUT_TAIL),
        exited,
        alive: () => running,
        /** SIGTERM, then SIGKILL after 3 s (a stalled gate cannot run its SIGTERM handler). */
        stop: async () => {
          if (!running) return;
          stopping = true;
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(t);
        },
      });
    };
    child.stdout.on('data', onData);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`fuzz gate exited (code ${code}, signal ${signal}) before listening:\n${out}`));
    });
  });
}
