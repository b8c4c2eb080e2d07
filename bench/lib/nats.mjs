// @ts-check
// NATS for the NATS transport scenario: NATS_URL, or a nats-server of our own on a free port
// (started on first use, stopped by the runner; never the system's 4222).
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { freePort, spawnChild, stopProcess } from './proc.mjs';
import { waitPort } from './rig.mjs';

const NATS_SERVER = (() => {
  try {
    const found = execFileSync('bash', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).trim();
    if (found) return found;
  } catch {
    // not on PATH
  }
  return existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null; // Debian's place
})();

export const NO_NATS = 'no NATS (NATS_URL unset and no nats-server binary)';

/** The run's NATS: `ensure()` → {url, port?, child?, external?} or null (no NATS); `stop()`. */
export function natsServer() {
  let nats;
  return {
    async ensure() {
      if (nats) return nats;
      if (process.env.NATS_URL) {
        nats = { url: process.env.NATS_URL, external: true };
        return nats;
      }
      if (!NATS_SERVER) return null;
      const port = await freePort();
      const child = spawnChild('nats-server', [NATS_SERVER, '-a', '127.0.0.1', '-p', String(port)], { ipc: false, quiet: true });
      await waitPort(port);
      nats = { url: `nats://127.0.0.1:${port}`, port, child };
      return nats;
    },
    async stop() {
      if (nats?.child) await stopProcess(nats.child, 3000, 'SIGTERM');
    },
  };
}
