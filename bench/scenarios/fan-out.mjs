// @ts-check
// Push fan-out: every shared server with `scale.fanout.count` sessions connected (capped by the
// fd limit); one request makes it push to all; time until the last has it, over rounds.
//
// Needs: rig, servers (the shared servers).
import { median } from '../lib/common.mjs';
import { FD_CAP } from '../lib/proc.mjs';

export function fanOut(scale) {
  return {
    name: `push fan-out to ${scale.fanout.count.toLocaleString('en-US')} sessions (tcp)`,
    needs: ['rig', 'servers'],
    async run({ deadline, rig, servers }) {
      const out = [];
      const count = Math.min(scale.fanout.count, FD_CAP);
      for (const [kind, srv] of await servers.ensure()) {
        if (Date.now() > deadline - 8000 && out.length > 0) break;
        const l = await rig.load();
        const r = await l.request('fanout', {
          target: { transport: 'tcp', port: srv.tcp },
          count,
          rounds: scale.fanout.rounds,
          style: kind === 'mosquitto' ? 'mosquitto' : 'gate',
        });
        const complete = r.rounds.filter((x) => !x.timedOut);
        out.push({
          server: kind,
          sessions: r.sessions,
          failedConnections: r.failedConnections,
          lastMs: median(complete.map((x) => x.lastMs)),
          p50Ms: median(complete.map((x) => x.p50Ms)),
          rounds: r.rounds,
          incomplete: r.rounds.length - complete.length,
        });
      }
      return { data: out, summary: out.map((o) => `${o.server} last after ${o.lastMs} ms`).join(', ') };
    },
  };
}
