// Request/reply with gate and module in two processes over RedisTransport, against the same
// cells in-process (TCP, 64 B, each conns × in flight configuration, QoS 0 and 1).
//
// Needs: rig, redis (skipped without one), closedLoopCells. The in-process rate of a cell is
// mqgate's "request-reply tcp … 64B" cell from closedLoopCells when those scenarios ran earlier
// in this invocation. A cell not there (e.g. `--only redis`) is measured here first, on an
// in-process mqgate of its own with the same trials; the summary then says so.
import { fmt, median, sleep, summarize } from '../lib/common.mjs';
import { probeRate, runRrCell } from '../lib/closed-loop-cell.mjs';
import { NO_REDIS } from '../lib/redis.mjs';

/** In-process mqgate rate per `${conns} ${qos}`, from closedLoopCells or probed; and whether any was probed. */
async function inProcessRates(rig, closedLoopCells, scale) {
  const rates = new Map();
  const missing = [];
  for (const qos of [0, 1]) {
    for (const [conns, inflight] of scale.rr.configs) {
      const c = closedLoopCells.find((x) => x.server === 'mqgate' && x.transport === 'tcp' && x.conns === conns && x.qos === qos && x.payload === 64);
      if (c) rates.set(`${conns} ${qos}`, c.rate);
      else missing.push({ transport: 'tcp', conns, inflight, qos, payload: 64 });
    }
  }
  if (missing.length) {
    const srv = await rig.startNodeServer('mqgate');
    try {
      for (const cell of missing) rates.set(`${cell.conns} ${cell.qos}`, await probeRate(rig, srv, cell, scale.rr));
    } finally {
      await srv.stop();
    }
  }
  return { rates, probed: missing.length > 0 };
}

export function redisTransportRequestReply(scale) {
  return {
    name: 'redis transport: request/reply vs in-process (gate and module in 2 processes)',
    needs: ['rig', 'redis', 'closedLoopCells'],
    async run({ rig, redis, closedLoopCells }) {
      const r = await redis.ensure();
      if (!r) return { skipped: NO_REDIS };
      const inproc = await inProcessRates(rig, closedLoopCells, scale);
      const mod = await rig.startNodeServer('mqgate', { role: 'module', transport: 'redis', transportRedis: r.url, tcp: false, ws: false });
      const gate = await rig.startNodeServer('mqgate', { role: 'gate', transport: 'redis', transportRedis: r.url });
      const srv = { kind: 'mqgate-redis', tcp: gate.tcp, ws: gate.ws, pids: [...gate.pids, ...mod.pids] };
      try {
        await sleep(500);
        const out = [];
        for (const qos of [0, 1]) {
          for (const [conns, inflight] of scale.rr.configs) {
            const trials = [];
            for (let t = 0; t < scale.rr.trials; t++) trials.push(await runRrCell(rig, srv, { transport: 'tcp', conns, inflight, qos, payload: 64 }, scale.rr));
            const inProcessRate = inproc.rates.get(`${conns} ${qos}`) ?? null;
            const rate = median(trials.map((x) => x.rate));
            out.push({ conns, inflight, qos, rate, inProcessRate, ratio: inProcessRate ? rate / inProcessRate : null, latency: summarize(trials.map((x) => x.hist)) });
          }
        }
        const summary = out.map((o) => `${o.conns}x${o.inflight} qos${o.qos}: ${fmt(o.rate)}/s (${o.ratio ? fmt(o.ratio) + '×' : '?'} in-process)`).join(', ');
        return { data: out, summary: inproc.probed ? `${summary} (in-process rates probed here: request-reply tcp 64B did not run)` : summary };
      } finally {
        await gate.stop();
        await mod.stop();
      }
    },
  };
}
