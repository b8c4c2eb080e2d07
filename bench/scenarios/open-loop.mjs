// @ts-check
// Latency at 50 % of each server's peak, and at one offered load common to all (the lowest of
// those 50 % points), open loop (TCP, QoS 0, 64 B): requests due in 1 ms buckets, latency
// counted from the due time.
//
// Needs: rig, servers (the shared servers), closedLoopCells. A server's peak is the closed-loop
// rate of its TCP 64 B QoS 0 cell at the larger connection count (scale.rr.configs[1]), which
// the "request-reply tcp <conns>x<inflight> 64B" scenario appends to closedLoopCells when it
// runs before this one. When no such cell is there (that scenario was not selected, e.g.
// `--only open`), this scenario measures the peaks itself: the same cell, the same trials, on
// each server just before its open-loop run; the summary then says so.
import { fmt, summarize } from '../lib/common.mjs';
import { probeRate } from '../lib/closed-loop-cell.mjs';
import { serverCpu } from '../lib/rig.mjs';

/** One open-loop run of `srv` at `rate` requests/s: {rateAsked, rate, lost, latency, maxScheduleLagMs, serverCpuShare, conns}. */
async function openRun(rig, kind, srv, rate, { conns, warmupMs, measureMs }) {
  const l = await rig.load();
  const cpu0 = serverCpu(srv);
  const r = await l.request('open', {
    target: { transport: 'tcp', port: srv.tcp },
    conns,
    rate,
    qos: 0,
    payloadSize: 64,
    warmupMs,
    measureMs,
    style: kind === 'mosquitto' ? 'mosquitto' : 'gate',
  });
  return {
    rateAsked: rate,
    rate: r.rate,
    lost: r.lost,
    latency: summarize([r.hist]),
    maxScheduleLagMs: r.maxScheduleLagMs,
    serverCpuShare: (serverCpu(srv) - cpu0) / ((warmupMs + measureMs) / 1000),
    conns: r.connections,
  };
}

/**
 * Each server at 50 % of its own peak; then every server at one offered load common to all, the
 * lowest of those 50 % points (`common`: the server that set it is not run again, its own run is
 * that load). Each row: {server, peak, ...the 50 % run, common: the run at the common load}.
 */
export function openLoop(scale) {
  const [peakConns, peakInflight] = scale.rr.configs[1];
  const peakCell = { transport: 'tcp', conns: peakConns, inflight: peakInflight, qos: 0, payload: 64 };
  const isPeakCell = (c) => c.transport === 'tcp' && c.conns === peakConns && c.qos === 0 && c.payload === 64;
  const perRun = scale.open.warmupMs + scale.open.measureMs + 2000;
  return {
    name: 'open-loop latency at 50% of peak (tcp, QoS 0, 64B)',
    needs: ['rig', 'servers', 'closedLoopCells'],
    async run({ deadline, rig, servers, closedLoopCells }) {
      const running = await servers.ensure();
      const probe = !closedLoopCells.some(isPeakCell);
      const out = [];
      let truncated = false;
      for (const [kind, srv] of running) {
        if (Date.now() > deadline - perRun) {
          truncated = true;
          break;
        }
        const peak = probe
          ? await probeRate(rig, srv, peakCell, scale.rr)
          : (closedLoopCells.find((x) => x.server === kind && isPeakCell(x))?.rate ?? null);
        if (!peak) continue;
        out.push({
          server: kind,
          peak,
          common: /** @type {any} */ (undefined),
          ...(await openRun(rig, kind, srv, Math.round(peak * 0.5), scale.open)),
        });
      }
      if (out.length === 0) throw new Error(`no peak measured (${probe ? 'the peak probe measured none' : 'request-reply tcp 64B did not run'})`);
      const lowest = out.reduce((a, b) => (b.rateAsked < a.rateAsked ? b : a));
      const common = lowest.rateAsked;
      for (const o of out) {
        if (o === lowest) {
          o.common = { ...o, setBy: true };
          delete o.common.common;
          continue;
        }
        if (Date.now() > deadline - scale.open.common.warmupMs - scale.open.common.measureMs - 2000) {
          truncated = true;
          continue;
        }
        o.common = await openRun(rig, o.server, running.get(o.server), common, { conns: scale.open.conns, ...scale.open.common });
      }
      const summary =
        out.map((o) => `${o.server} p99 ${o.latency.p99} ms @ ${fmt(o.rateAsked)}/s`).join(', ') +
        `; at ${fmt(common)}/s (${lowest.server}'s 50 %): ` +
        out.map((o) => `${o.server} p99 ${o.common?.latency.p99 ?? '-'} ms`).join(', ');
      return {
        data: out,
        truncated,
        summary: probe ? `${summary} (peaks probed here: request-reply tcp ${peakConns}x${peakInflight} 64B did not run)` : summary,
      };
    },
  };
}
