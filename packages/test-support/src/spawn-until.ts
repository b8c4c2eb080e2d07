import { spawn, type ChildProcess } from 'node:child_process';

/** A child process started by {@link spawnUntil}, once it printed its ready line. */
export interface ReadyProcess {
  child: ChildProcess;
  /** The ready line's match. */
  match: RegExpExecArray;
  /** Resolves with the exit code when the process exits. */
  exited: Promise<number | null>;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** Sends a signal (default SIGTERM; none once exited) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Kills it at once (SIGKILL: a crash, no graceful stop) and waits for it to exit. */
  kill(): Promise<void>;
}

/**
 * Spawns `node <args>` with `env` and waits until its output matches `ready`.
 * @param what names the process and its ready line in errors, e.g. "demo ... listening".
 * @throws Error with the process output when it exits first, or prints no match within 15 s (then it is killed).
 */
export function spawnUntil(args: string[], env: NodeJS.ProcessEnv, ready: RegExp, what: { name: string; line: string }): Promise<ReadyProcess> {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what.name} did not report ${what.line} within 15 s; output:\n${out}`));
    }, 15_000);
    const onData = () => {
      const match = ready.exec(out);
      if (!match) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve({
        child,
        match,
        exited,
        output: () => out,
        stop: (signal = 'SIGTERM') => {
          if (alive()) child.kill(signal);
          return exited;
        },
        kill: async () => {
          if (alive()) child.kill('SIGKILL');
          await exited;
        },
      });
    };
    child.stdout!.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${what.name} exited with code ${code} before ${what.line}; output:\n${out}`));
    });
  });
}
