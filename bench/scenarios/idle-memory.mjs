// @ts-check
// Idle connections: server memory per connection (RSS and heap, after forced GCs) at each of
// `scale.idle.counts` open connections (capped by the fd limit: 19,744 at a hard limit of
// 20,000), for mqgate, aedes and bare, each on a server of its own, per transport.
//
// Needs: rig.
import { fmt, sleep } from '../lib/common.mjs';
import { FD_CAP, FD_HARD_LIMIT } from '../lib/proc.mjs';

function idleMemory(scale, kind, transport) {
  return {
    name: `idle memory ${kind} ${transport}`,
    needs: ['rig'],
    async run({ deadline, rig }) {
      // mqgate's default maxConnections ('auto') keeps a tenth of the fd limit in reserve (18,000
      // of 20,000 here); the level at the fd cap needs the cap above it, so this server (only)
      // sets it just under the hard limit.
      const srv = await rig.startNodeServer(kind, kind === 'mqgate' ? { gate: { maxConnections: FD_HARD_LIMIT - 64 } } : {});
      const l = await rig.load();
      const levels = [];
      try {
        await sleep(300);
        const base = await srv.node.request('mem');
        for (const wanted of scale.idle.counts) {
          const target = Math.min(wanted, FD_CAP);
          if (Date.now() > deadline - 15000 && levels.length > 0) break;
          const o = await l.request('idleOpen', { target: { transport, port: transport === 'ws' ? srv.ws : srv.tcp }, count: target }, 180000);
          await sleep(500);
          const m = await srv.node.request('mem');
          const n = o.open;
          levels.push({
            requested: wanted,
            attempted: target,
            open: n,
            failed: o.failed,
            errorSample: o.errorSample,
            cappedBy: target < wanted ? `RLIMIT_NOFILE hard limit ${FD_HARD_LIMIT} (server and load process each need one fd per connection)` : null,
            openSeconds: o.seconds,
            rssPerConn: (m.rss - base.rss) / n,
            heapPerConn: (m.heapUsed - base.heapUsed) / n,
            externalPerConn: (m.external - base.external) / n,
            rss: m.rss,
            heapUsed: m.heapUsed,
          });
        }
        await l.request('idleClose', {});
        return {
          data: { server: kind, transport, base, levels },
          summary: levels
            .map((x) => `${x.open.toLocaleString('en-US')} conns: ${fmt(x.rssPerConn / 1024)} KiB RSS, ${fmt(x.heapPerConn / 1024)} KiB heap each`)
            .join('; '),
        };
      } finally {
        await l.request('idleClose', {}).catch(() => undefined);
        await srv.stop();
      }
    },
  };
}

export function idleMemoryScenarios(scale) {
  const out = [];
  for (const transport of ['tcp', 'ws']) for (const kind of ['mqgate', 'aedes', 'bare']) out.push(idleMemory(scale, kind, transport));
  return out;
}
