// @mqgate/sdk's request/response path next to a bare MQTT.js publish/message round trip
// (what a front end writes by hand: publish, 'message', JSON.parse of the envelope), on the
// same kind of connection to the same mqgate: one TCP connection, MQTT 3.1.1 (msgid topics)
// and MQTT 5 (Response Topic + Correlation Data), 1 and 10 requests in flight, 64 B. Trials
// interleave SDK and bare so drift hits both alike (scale.sdk.trials of them: 5 in a full run). The numbers the target reads: the
// client's CPU per reply and the replies/s, SDK ÷ bare (target ≤ 1.2).
//
// Needs: rig.
import { fmt, median, summarize } from '../lib/common.mjs';

const LEVELS = ['v3.1.1', 'v5'];
const INFLIGHT = [1, 10];
const CLIENTS = ['bare', 'sdk'];

export function sdkRequestReply(scale) {
  const rr = scale.rr;
  return {
    name: 'sdk request-reply vs bare MQTT.js tcp 1 connection 64B',
    needs: ['rig'],
    async run({ rig, deadline }) {
      const srv = await rig.startNodeServer('mqgate', { ws: false });
      const cells = [];
      for (const level of LEVELS) for (const inflight of INFLIGHT) for (const client of CLIENTS) cells.push({ level, inflight, client, trials: [] });
      let truncated = false;
      try {
        const load = await rig.load();
        for (let t = 0; t < scale.sdk.trials && !truncated; t++) {
          for (const c of cells) {
            if (Date.now() > deadline - 2 * (rr.warmupMs + rr.measureMs)) {
              truncated = true;
              break;
            }
            const args = { port: srv.tcp, level: c.level, client: c.client === 'sdk' ? 'sdk' : 'mqttjs', inflight: c.inflight, payloadSize: 64 };
            c.trials.push(await load.request('sdkrr', { ...args, warmupMs: rr.warmupMs, measureMs: rr.measureMs }));
          }
        }
      } finally {
        await srv.stop();
      }
      const data = cells.map((c) => ({
        level: c.level,
        inflight: c.inflight,
        client: c.client,
        rate: median(c.trials.map((x) => x.rate)),
        clientCpuUsPerReply: median(c.trials.map((x) => x.clientCpuUsPerReply)),
        latency: summarize(c.trials.map((x) => x.hist)),
        bad: c.trials.reduce((a, x) => a + x.bad, 0),
      }));
      const bad = data.filter((d) => d.bad > 0 || !(d.rate > 0));
      if (bad.length) throw new Error(`bad or no replies: ${bad.map((d) => `${d.client} ${d.level} ×${d.inflight}`).join('; ')}`);
      const ratios = [];
      for (const level of LEVELS)
        for (const inflight of INFLIGHT) {
          const b = data.find((d) => d.level === level && d.inflight === inflight && d.client === 'bare');
          const s = data.find((d) => d.level === level && d.inflight === inflight && d.client === 'sdk');
          ratios.push({
            level,
            inflight,
            cpuRatio: b.clientCpuUsPerReply > 0 ? s.clientCpuUsPerReply / b.clientCpuUsPerReply : null,
            rateRatio: s.rate > 0 ? b.rate / s.rate : null,
          });
        }
      const worst = Math.max(...ratios.map((r) => r.cpuRatio ?? 0));
      return {
        data: { cells: data, ratios, worstCpuRatio: worst, target: 1.2 },
        truncated,
        summary:
          ratios.map((r) => `${r.level} ×${r.inflight}: client CPU/reply ${fmt(r.cpuRatio)}×, time/reply ${fmt(r.rateRatio)}×`).join('; ') +
          ` (SDK ÷ bare MQTT.js; target ≤ 1.2)`,
      };
    },
  };
}
