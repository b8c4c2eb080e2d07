// @ts-check
// Request/reply with gate and module in two processes over a transport between processes
// (RedisTransport, NatsTransport), against the same cells in-process (TCP, 64 B, each conns ×
// in flight configuration, QoS 0 and 1): throughput as a ratio to in-process, latency added
// to in-process (p50, p99), gate + module CPU per 1,000 requests, and each process's CPU per
// request (gate, module, the broker when the run started it, load) with the cores they used.
//
// Needs: rig, redis or nats (skipped without one), closedLoopCells. The in-process rate and
// latency of a cell come from mqgate's "request-reply tcp … 64B" cell of closedLoopCells when
// those scenarios ran earlier in this invocation. A cell not there (e.g. `--only redis`) is
// measured here first, on an in-process mqgate of its own with the same trials; the summary
// then says so.
import { fmt, median, sleep, summarize } from '../lib/common.mjs';
import { runRrCell } from '../lib/closed-loop-cell.mjs';
import { NO_NATS } from '../lib/nats.mjs';
import { NO_REDIS } from '../lib/redis.mjs';

/** Median rate, merged latency and median server CPU share of `rr.trials` trials of `cell` on `srv`. */
async function measure(rig, srv, cell, rr) {
  const trials = [];
  for (let t = 0; t < rr.trials; t++) trials.push(await runRrCell(rig, srv, cell, rr));
  const names = Object.keys(trials[0]?.processCpuUsPerReply ?? {});
  return {
    rate: median(trials.map((x) => x.rate)),
    latency: summarize(trials.map((x) => x.hist)),
    cpuShare: median(trials.map((x) => x.serverCpuShare)),
    cpuUsPerReply: median(trials.map((x) => x.cpuUsPerReply)),
    processCpuUsPerReply: Object.fromEntries(names.map((n) => [n, median(trials.map((x) => x.processCpuUsPerReply[n]))])),
  };
}

/** In-process mqgate {rate, latency} per `${conns} ${qos}`, from closedLoopCells or measured here; and whether any was. */
async function inProcessCells(rig, closedLoopCells, scale) {
  const cells = new Map();
  const missing = [];
  for (const qos of [0, 1]) {
    for (const [conns, inflight] of scale.rr.configs) {
      const c = closedLoopCells.find((x) => x.server === 'mqgate' && x.transport === 'tcp' && x.conns === conns && x.qos === qos && x.payload === 64);
      if (c) cells.set(`${conns} ${qos}`, { rate: c.rate, latency: c.latency ?? null, cpuUsPerReply: c.cpuUsPerReply ?? null });
      else missing.push({ transport: 'tcp', conns, inflight, qos, payload: 64 });
    }
  }
  if (missing.length) {
    const srv = await rig.startNodeServer('mqgate');
    try {
      for (const cell of missing) cells.set(`${cell.conns} ${cell.qos}`, await measure(rig, srv, cell, scale.rr));
    } finally {
      await srv.stop();
    }
  }
  return { cells, probed: missing.length > 0 };
}

const minus = (a, b) => (a == null || b == null ? null : Math.round((a - b) * 1000) / 1000);

/**
 * The scenario for one transport: `kind` 'redis' or 'nats'; `resource` the run's server of
 * it (resources.redis / resources.nats); `configKey` the mqgate bench server's option naming its URL.
 */
function transportRequestReply(scale, { kind, label, resource, configKey, missing }) {
  return {
    name: `${kind} transport: request/reply vs in-process (gate and module in 2 processes over ${label})`,
    needs: ['rig', resource, 'closedLoopCells'],
    async run(res) {
      const { rig, closedLoopCells } = res;
      const server = await res[resource].ensure();
      if (!server) return { skipped: missing };
      const inproc = await inProcessCells(rig, closedLoopCells, scale);
      const mod = await rig.startNodeServer('mqgate', { role: 'module', transport: kind, [configKey]: server.url, tcp: false, ws: false });
      const gate = await rig.startNodeServer('mqgate', { role: 'gate', transport: kind, [configKey]: server.url });
      const cpuPids = [
        { name: 'gate', pid: gate.pids[0] },
        { name: 'module', pid: mod.pids[0] },
        ...(server.child ? [{ name: kind === 'redis' ? 'redis-server' : 'nats-server', pid: server.child.pid }] : []),
      ];
      const srv = { kind: `mqgate-${kind}`, tcp: gate.tcp, ws: gate.ws, pids: [...gate.pids, ...mod.pids], cpuPids };
      try {
        await sleep(500);
        const out = [];
        for (const qos of [0, 1]) {
          for (const [conns, inflight] of scale.rr.configs) {
            const m = await measure(rig, srv, { transport: 'tcp', conns, inflight, qos, payload: 64 }, scale.rr);
            const base = inproc.cells.get(`${conns} ${qos}`);
            const inProcessRate = base?.rate ?? null;
            out.push({
              conns,
              inflight,
              qos,
              rate: m.rate,
              inProcessRate,
              ratio: inProcessRate ? m.rate / inProcessRate : null,
              latency: m.latency,
              addedP50: minus(m.latency.p50, base?.latency?.p50),
              addedP99: minus(m.latency.p99, base?.latency?.p99),
              // gate + module CPU over the measured window ÷ its replies: µs per reply = ms per 1,000
              cpuMsPer1000: m.cpuUsPerReply,
              inProcessCpuMsPer1000: base?.cpuUsPerReply ?? null,
              // µs per reply of each process (gate, module, broker when ours, load) and the cores
              // they used together: near the machine's cores, the machine is the bound.
              processCpuUsPerReply: m.processCpuUsPerReply,
              coresUsed: m.rate > 0 ? (Object.values(m.processCpuUsPerReply).reduce((a, b) => a + (b ?? 0), 0) * m.rate) / 1e6 : null,
            });
          }
        }
        const summary = out
          .map(
            (o) =>
              `${o.conns}x${o.inflight} qos${o.qos}: ${fmt(o.rate)}/s (${o.ratio ? fmt(o.ratio) + '×' : '?'} in-process` +
              (o.conns === 1 && o.inflight === 1 ? `, +${fmt(o.addedP50)}/+${fmt(o.addedP99)} ms p50/p99` : '') +
              `, ${fmt(o.cpuMsPer1000)} ms CPU/1k, ${fmt(o.coresUsed)} cores in all)`,
          )
          .join(', ');
        return { data: out, summary: inproc.probed ? `${summary} (in-process cells measured here: request-reply tcp 64B did not run)` : summary };
      } finally {
        await gate.stop();
        await mod.stop();
      }
    },
  };
}

export function redisTransportRequestReply(scale) {
  return transportRequestReply(scale, { kind: 'redis', label: 'Redis', resource: 'redis', configKey: 'transportRedis', missing: NO_REDIS });
}

export function natsTransportRequestReply(scale) {
  return transportRequestReply(scale, { kind: 'nats', label: 'NATS', resource: 'nats', configKey: 'transportNats', missing: NO_NATS });
}
