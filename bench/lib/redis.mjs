// @ts-check
// Redis for the Redis scenarios: REDIS_URL, or a redis-server of our own on a free port
// (started on first use, stopped by the runner), and reading its INFO commandstats.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { freePort, spawnChild, stopProcess } from './proc.mjs';
import { waitPort } from './rig.mjs';

const require = createRequire(import.meta.url);
const REDIS_SERVER = (() => {
  try {
    return execFileSync('bash', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
})();

export const NO_REDIS = 'no Redis (REDIS_URL unset and no redis-server binary)';

/** The run's Redis: `ensure()` → {url, port?, child?, external?} or null (no Redis); `stop()`. */
export function redisServer() {
  let redis;
  return {
    async ensure() {
      if (redis) return redis;
      if (process.env.REDIS_URL) {
        redis = { url: process.env.REDIS_URL, external: true };
        return redis;
      }
      if (!REDIS_SERVER) return null;
      const port = await freePort();
      const child = spawnChild(
        'redis-server',
        [REDIS_SERVER, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
        { ipc: false, quiet: true },
      );
      await waitPort(port);
      redis = { url: `redis://127.0.0.1:${port}`, port, child };
      return redis;
    },
    async stop() {
      if (redis?.child) await stopProcess(redis.child, 3000, 'SIGTERM');
    },
  };
}

export function redisClient(url) {
  const { Redis } = require('ioredis');
  return new Redis(url, { maxRetriesPerRequest: 1 });
}

export async function commandStats(client) {
  const info = await client.info('commandstats');
  const out = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}

/** Commands that write a stored session (RedisStorage: SET, PEXPIRE, SET NX, DEL). Transport traffic is counted apart. */
export const WRITE_COMMANDS = new Set(['set', 'setex', 'psetex', 'pexpire', 'expire', 'del', 'unlink', 'getex', 'hset', 'hmset', 'mset']);

export function diffStats(a, b) {
  const d = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) d[k] = v - (a[k] ?? 0);
  delete d.info; // our own INFO calls
  return d;
}
