// @ts-check
// MQTT 5 request/response next to MQTT 3.1.1 on the same servers, in one scenario: TCP,
// the scale's largest closed-loop configuration (100 × 10 in a full run), 64 B, QoS 0 and 1.
// - v3.1.1: mqant's form, `echo/HD_echo/<n>`, the reply on the same topic;
// - v5: `echo/HD_echo` with Response Topic `r/<clientid>` and a 4-byte Correlation Data, the
//   reply on the Response Topic (the way `mosquitto_rr -V 5` and MQTT.js ask).
// Servers: mqgate and bare (aedes 1.x refuses MQTT 5; mosquitto's responder uses its own
// topics). Trials interleave the two protocol levels so drift hits both alike. The number the
// issue asks for is mqgate's server CPU per request, v5 ÷ v3.1.1 (target ≤ 1.1).
//
// Needs: rig, servers (the shared servers, see shared-servers.mjs).
import { fmt, median, summarize } from '../lib/common.mjs';
import { runTrials } from '../lib/closed-loop-cell.mjs';

const SERVERS = ['mqgate', 'bare'];

export function mqtt5RequestReply(scale) {
  const [conns, inflight] = scale.rr.configs[scale.rr.configs.length - 1];
  return {
    name: `request-reply mqtt5 tcp ${conns}x${inflight} 64B`,
    needs: ['rig', 'servers'],
    async run({ deadline, rig, servers }) {
      const running = await servers.ensure();
      const kinds = SERVERS.filter((k) => running.has(k));
      if (kinds.length === 0) throw new Error('neither mqgate nor bare is running (setup failed)');
      const cells = [];
      for (const qos of [0, 1]) {
        for (const server of kinds) {
          for (const level of ['v3.1.1', 'v5']) {
            cells.push({ transport: 'tcp', conns, inflight, qos, payload: 64, server, level, style: level === 'v5' ? 'v5' : 'gate', trials: [] });
          }
        }
      }
      const rr = scale.rr;
      // Trials interleaved across servers so drift on the machine hits all of them alike.
      const truncated = await runTrials(rig, running, cells, rr, deadline);
      const data = cells.map((c) => {
        const rate = median(c.trials.map((x) => x.rate));
        const cpuShare = median(c.trials.map((x) => x.serverCpuShare));
        return {
          server: c.server,
          level: c.level,
          qos: c.qos,
          conns,
          inflight,
          rate,
          rates: c.trials.map((x) => Math.round(x.rate)),
          latency: summarize(c.trials.map((x) => x.hist)),
          serverCpuShare: cpuShare,
          // µs of server CPU per reply over the measured window (median of trials): the
          // per-request cost, less sensitive to a busy machine than req/s.
          cpuUsPerRequest: median(c.trials.map((x) => x.cpuUsPerReply)),
          lost: c.trials.reduce((a, x) => a + x.lost, 0),
          badReplies: c.trials.reduce((a, x) => a + x.badReplies, 0),
          badSample: c.trials.find((x) => x.badSample)?.badSample,
          failedConnections: c.trials.reduce((a, x) => a + x.failedConnections, 0),
        };
      });
      const bad = data.filter((c) => c.badReplies > 0 || c.failedConnections > 0 || !(c.rate > 0));
      if (bad.length)
        throw new Error(
          `bad replies or failed connections: ${bad.map((c) => `${c.server} ${c.level} qos${c.qos} (${c.badSample ?? c.failedConnections})`).join('; ')}`,
        );
      const ratios = mqgateRatios(data);
      return {
        data,
        ratios,
        truncated,
        summary: ratios
          .map((r) => `mqgate QoS ${r.qos}: v5 ${fmt(r.v5Rate)}/s vs v3.1.1 ${fmt(r.v311Rate)}/s, CPU/request ${r.cpuRatio.toFixed(2)}×`)
          .join('; '),
      };
    },
  };
}

/** mqgate's v5 ÷ v3.1.1 per QoS: server CPU per request, and throughput. */
export function mqgateRatios(data) {
  const out = [];
  for (const qos of [0, 1]) {
    const a = data.find((d) => d.server === 'mqgate' && d.qos === qos && d.level === 'v3.1.1');
    const b = data.find((d) => d.server === 'mqgate' && d.qos === qos && d.level === 'v5');
    if (!a || !b || !a.cpuUsPerRequest || !b.cpuUsPerRequest) continue;
    out.push({ qos, v311Rate: a.rate, v5Rate: b.rate, cpuRatio: b.cpuUsPerRequest / a.cpuUsPerRequest, rateRatio: b.rate / a.rate });
  }
  return out;
}
