// @ts-check
// Load modes `idleOpen` / `idleClose`: idle connections held across commands (memory per
// connection is read from the server in between).
import { sleep } from '../../lib/common.mjs';
import { now, openMany } from '../client.mjs';

/** The idle commands, over one pool of connections that lives as long as the returned object. */
export function idleCommands() {
  let pool = [];
  async function idleOpen({ target, count }) {
    const t0 = now();
    const want = count - pool.length;
    const { clients, failed, errorSample } = await openMany(target, Math.max(0, want), { concurrency: 256, opts: () => ({ keepalive: 600 }) });
    pool.push(...clients);
    const alive = pool.filter((c) => !c.closed).length;
    return { open: alive, failed, errorSample, seconds: (now() - t0) / 1000 };
  }
  async function idleClose() {
    const n = pool.length;
    for (const c of pool) c.destroy();
    pool = [];
    await sleep(200);
    return { closed: n };
  }
  return { idleOpen, idleClose };
}
