// @ts-check
// Connection rate (TCP: connect, CONNECT → CONNACK, DISCONNECT; repeat), plain on the shared
// servers, and with one Redis GET per CONNECT in the authenticate hook on servers of its own.
//
// Needs: connectionRate: rig, servers (the shared servers). connectionRateWithRedis: rig,
// redis (skipped without one).
import { fmt, summarize } from '../lib/common.mjs';
import { NO_REDIS } from '../lib/redis.mjs';

async function connRate(rig, srv, connrate) {
  const l = await rig.load();
  const r = await l.request('connrate', {
    target: { transport: 'tcp', port: srv.tcp },
    concurrency: connrate.concurrency,
    warmupMs: connrate.warmupMs,
    measureMs: connrate.measureMs,
  });
  return { rate: r.rate, connacks: r.connacks, failed: r.failed, errorSample: r.errorSample, latency: summarize([r.hist]) };
}

const summaryOf = (out) => out.map((o) => `${o.server} ${fmt(o.rate)}/s`).join(', ');

export function connectionRate(scale) {
  return {
    name: 'connection rate (tcp, CONNECT→CONNACK)',
    needs: ['rig', 'servers'],
    async run({ rig, servers }) {
      const out = [];
      for (const [kind, srv] of await servers.ensure()) out.push({ server: kind, ...(await connRate(rig, srv, scale.connrate)) });
      return { data: out, summary: summaryOf(out) };
    },
  };
}

export function connectionRateWithRedis(scale) {
  return {
    name: 'connection rate with a Redis GET in authenticate (tcp)',
    needs: ['rig', 'redis'],
    async run({ rig, redis }) {
      const r = await redis.ensure();
      if (!r) return { skipped: NO_REDIS };
      const out = [];
      for (const kind of ['mqgate', 'aedes', 'bare']) {
        const srv = await rig.startNodeServer(kind, { authRedis: r.url });
        try {
          out.push({ server: kind, ...(await connRate(rig, srv, scale.connrate)) });
        } finally {
          await srv.stop();
        }
      }
      return { data: out, summary: summaryOf(out) };
    },
  };
}
