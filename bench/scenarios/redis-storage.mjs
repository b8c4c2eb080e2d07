// Session persistence in Redis (RedisStorage): Redis commands per bound session while idle,
// pinging and requesting, and reconnect-and-restore latency; with the in-process transport, and
// with gate and module in two processes over RedisTransport.
//
// Needs: rig, redis (skipped without one).
import { fmt, sleep, summarize } from '../lib/common.mjs';
import { NO_REDIS, WRITE_COMMANDS, commandStats, diffStats, redisClient } from '../lib/redis.mjs';

/** `serverConfig(r)`: the gate's extra config; `extraServer(r)`: another process to start first (the module). */
async function storageScenario({ rig, redis, S, label, serverConfig, extraServer }) {
  const r = await redis.ensure();
  if (!r) return { skipped: NO_REDIS };
  const prefix = `bench:${label}:${Date.now()}:`;
  const extra = extraServer ? await extraServer(r) : null;
  const srv = await rig.startNodeServer('mqgate', {
    storageRedis: r.url,
    storagePrefix: prefix,
    heartbeatInterval: S.heartbeatMs,
    ...serverConfig(r),
  });
  const db = redisClient(r.url);
  const l = await rig.load();
  const target = { transport: 'tcp', port: srv.tcp };
  const userPrefix = `${label}-u${Date.now() % 100000}-`;
  const settings = Object.fromEntries(Array.from({ length: S.settings }, (_, i) => [`k${i}`, `value-${i}`]));
  try {
    const opened = await l.request('sessOpen', { target, users: S.users, settings, userPrefix }, 120000);
    if (opened.open === 0) throw new Error(`no session bound: ${opened.errorSample.join('; ')}`);
    await sleep(Math.min(500, S.heartbeatMs / 2));
    const modes = [];
    for (const m of ['idle', 'ping', 'active']) {
      const a = await commandStats(db);
      await l.request('sessTraffic', { mode: m, durationMs: S.windowMs, everyMs: Math.min(1000, S.heartbeatMs / 2) }, S.windowMs + 30000);
      const b = await commandStats(db);
      const d = diffStats(a, b);
      const writes = Object.entries(d).reduce((acc, [k, v]) => acc + (WRITE_COMMANDS.has(k) ? v : 0), 0);
      const total = Object.values(d).reduce((x, y) => x + y, 0);
      const intervals = S.windowMs / S.heartbeatMs;
      modes.push({
        mode: m,
        sessions: opened.open,
        commands: d,
        writesPerSessionPerHeartbeat: writes / opened.open / intervals,
        commandsPerSessionPerMinute: (total / opened.open) * (60000 / S.windowMs),
        writesPerSessionPerMinute: (writes / opened.open) * (60000 / S.windowMs),
      });
    }
    await l.request('sessDrop', {});
    await sleep(300);
    const restoreUsers = Math.min(S.restoreUsers, opened.open);
    const rs = await l.request('restore', { target, users: restoreUsers, userPrefix, expectKeys: Object.keys(settings), concurrency: 10 }, 120000);
    return {
      data: {
        heartbeatMs: S.heartbeatMs,
        windowMs: S.windowMs,
        sessions: opened.open,
        bindSeconds: opened.seconds,
        modes,
        restore: { users: restoreUsers, restored: rs.restored, missing: rs.missing, errorSample: rs.errorSample, latency: summarize([rs.hist]) },
      },
      summary:
        modes.map((x) => `${x.mode}: ${fmt(x.writesPerSessionPerHeartbeat)} writes/session/heartbeat`).join(', ') +
        `; restore p50 ${summarize([rs.hist]).p50} ms p99 ${summarize([rs.hist]).p99} ms (${rs.restored}/${restoreUsers} restored)`,
    };
  } finally {
    db.disconnect();
    await l.request('sessDrop', {}).catch(() => undefined);
    await srv.stop();
    if (extra) await extra.stop();
  }
}

export function redisStorageInProcess(scale) {
  return {
    name: 'redis storage: commands per session, reconnect-and-restore (in-process transport)',
    needs: ['rig', 'redis'],
    run: ({ rig, redis }) => storageScenario({ rig, redis, S: scale.redis, label: 'inproc', serverConfig: () => ({}) }),
  };
}

export function redisStorageOverTransport(scale) {
  return {
    name: 'redis transport: commands per session, reconnect-and-restore (2 processes)',
    needs: ['rig', 'redis'],
    run: ({ rig, redis }) =>
      storageScenario({
        rig,
        redis,
        S: scale.redis,
        label: 'rt',
        serverConfig: (r) => ({ role: 'gate', transport: 'redis', transportRedis: r.url }),
        extraServer: (r) => rig.startNodeServer('mqgate', { role: 'module', transport: 'redis', transportRedis: r.url, tcp: false, ws: false }),
      }),
  };
}
