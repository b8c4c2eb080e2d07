// @ts-check
// Latency at 50 % of each server's peak, open loop (TCP, QoS 0, 64 B): requests due in 1 ms
// buckets, latency counted from the due time.
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

export function openLoop(scale) {
  const [peakConns, peakInflight] = scale.rr.configs[1];
  const peakCell = { transport: 'tcp', conns: peakConns, inflight: peakInflight, qos: 0, payload: 64 };
  const isPeakCell = (c) => c.transport === 'tcp' && c.conns === peakConns && c.qos === 0 && c.payload === 64;
  return {
    name: 'open-loop latency at 50% of peak (tcp, QoS 0, 64B)',
    needs: ['rig', 'servers', 'closedLoopCells'],
    async run({ deadline, rig, servers, closedLoopCells }) {
      const running = await servers.ensure();
      const probe = !closedLoopCells.some(isPeakCell);
      const out = [];
      for (const [kind, srv] of running) {
        if (Date.now() > deadline - scale.open.warmupMs - scale.open.measureMs - 2000) break;
        const peak = probe
          ? await probeRate(rig, srv, peakCell, scale.rr)
          : (closedLoopCells.find((x) => x.server === kind && isPeakCell(x))?.rate ?? null);
        if (!peak) continue;
        const rate = Math.round(peak * 0.5);
        const l = await rig.load();
        const cpu0 = serverCpu(srv);
        const r = await l.request('open', {
          target: { transport: 'tcp', port: srv.tcp },
          conns: scale.open.conns,
          rate,
          qos: 0,
          payloadSize: 64,
          warmupMs: scale.open.warmupMs,
          measureMs: scale.open.measureMs,
          style: kind === 'mosquitto' ? 'mosquitto' : 'gate',
        });
        const cpu = (serverCpu(srv) - cpu0) / ((scale.open.warmupMs + scale.open.measureMs) / 1000);
        out.push({
          server: kind,
          peak,
          rateAsked: rate,
          rate: r.rate,
          lost: r.lost,
          latency: summarize([r.hist]),
          maxScheduleLagMs: r.maxScheduleLagMs,
          serverCpuShare: cpu,
          conns: r.connections,
        });
      }
      if (out.length === 0) throw new Error(`no peak measured (${probe ? 'the peak probe measured none' : 'request-reply tcp 64B did not run'})`);
      const summary = out.map((o) => `${o.server} p99 ${o.latency.p99} ms @ ${fmt(o.rateAsked)}/s`).join(', ');
      return {
        data: out,
        summary: probe ? `${summary} (peaks probed here: request-reply tcp ${peakConns}x${peakInflight} 64B did not run)` : summary,
      };
    },
  };
}
