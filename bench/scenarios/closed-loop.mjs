// @ts-check
// Request/reply throughput and latency in a closed loop: one scenario per transport × payload
// × (conns × in flight) configuration, each cell at QoS 0 and 1 on every shared server.
//
// Needs: rig, servers (the shared servers, see shared-servers.mjs), closedLoopCells (the run's
// list of cells: every cell measured here is appended to it, even when the scenario then fails
// on bad replies; open-loop, redis-transport and the report read it).
import { fmt, median, summarize } from '../lib/common.mjs';
import { runTrials } from '../lib/closed-loop-cell.mjs';

function rrKey(c) {
  return `${c.transport} ${c.conns}x${c.inflight} qos${c.qos} ${c.payload}B`;
}

function requestReply(scale, transport, payload, conns, inflight) {
  const rr = scale.rr;
  return {
    name: `request-reply ${transport} ${conns}x${inflight} ${payload === 64 ? '64B' : '4KiB'}`,
    needs: ['rig', 'servers', 'closedLoopCells'],
    async run({ deadline, rig, servers, closedLoopCells }) {
      const running = await servers.ensure();
      const kinds = [...running.keys()].filter((k) => transport === 'tcp' || k !== 'mosquitto');
      if (kinds.length === 0) throw new Error('no server running (setup failed)');
      const cells = [];
      for (const qos of [0, 1]) for (const server of kinds) cells.push({ transport, conns, inflight, qos, payload, server, trials: [] });
      // Trials interleaved across servers so drift on the machine hits all of them alike.
      const truncated = await runTrials(rig, running, cells, rr, deadline);
      const out = cells.map((c) => {
        const rate = median(c.trials.map((x) => x.rate));
        const lat = summarize(c.trials.map((x) => x.hist));
        return {
          key: rrKey(c),
          server: c.server,
          transport,
          conns,
          inflight,
          qos: c.qos,
          payload,
          rate,
          rates: c.trials.map((x) => Math.round(x.rate)),
          latency: lat,
          serverCpuShare: median(c.trials.map((x) => x.serverCpuShare)),
          loadCpuShare: median(c.trials.map((x) => x.loadCpuShare)),
          // µs of server CPU per reply over the measured window (= ms per 1,000 replies), median of trials.
          cpuUsPerReply: median(c.trials.map((x) => x.cpuUsPerReply)),
          lost: c.trials.reduce((a, x) => a + x.lost, 0),
          badReplies: c.trials.reduce((a, x) => a + x.badReplies, 0),
          badSample: c.trials.find((x) => x.badSample)?.badSample,
          failedConnections: c.trials.reduce((a, x) => a + x.failedConnections, 0),
        };
      });
      closedLoopCells.push(...out);
      const bad = out.filter((c) => c.badReplies > 0 || c.failedConnections > 0 || !(c.rate > 0));
      if (bad.length)
        throw new Error(
          `bad replies or failed connections: ${bad.map((c) => `${c.server} ${c.key} (${c.badSample ?? c.failedConnections})`).join('; ')}`,
        );
      const q0 = out.filter((c) => c.qos === 0);
      return {
        data: out,
        truncated,
        summary: q0.map((c) => `${c.server} ${fmt(c.rate)}/s ${fmt(c.cpuUsPerReply)} µs`).join(', ') + ' (QoS 0; µs = server CPU per reply)',
      };
    },
  };
}

/** Every request-reply scenario, in the order of the report's table. */
export function requestReplyScenarios(scale) {
  const out = [];
  for (const transport of ['tcp', 'ws']) {
    for (const payload of [64, 4096]) {
      for (const [conns, inflight] of scale.rr.configs) out.push(requestReply(scale, transport, payload, conns, inflight));
    }
  }
  return out;
}

/** The closed-loop cells of a saved run's results (what closedLoopCells held in that run). */
export function closedLoopCellsOf(results) {
  return Object.entries(results.scenarios)
    .filter(([name, v]) => /^request-reply (tcp|ws) /.test(name) && Array.isArray(v.data))
    .flatMap(([, v]) => v.data);
}
