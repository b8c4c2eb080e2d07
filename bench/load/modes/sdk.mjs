// Load mode `sdkrr`: one MQTT.js connection in a closed loop, asking either through
// @mqgate/sdk (`request()`) or by hand on bare MQTT.js (publish + 'message' + JSON.parse of
// the envelope, what a front end writes without the SDK). Same server, same connection kind
// (TCP, MQTT 3.1.1 msgid topics or MQTT 5 Response Topic + Correlation Data), same payload.
// Measures replies/s and this process's CPU per reply (the client's cost of a round trip).
import { createRequire } from 'node:module';
import { makePayload, newHistogram, encodeHistogram, sleep } from '../../lib/common.mjs';
import { now } from '../client.mjs';

const require = createRequire(import.meta.url);
const mqtt = require('mqtt');
const sdk = require('../../../packages/sdk/dist/cjs/index.js');

/** A closed loop of `inflight` requests through `ask(body)` (a promise of the Result). */
async function loop(ask, { inflight, payload, warmupMs, measureMs }) {
  const hist = newHistogram();
  let phase = 'warmup';
  let counted = 0;
  let bad = 0;
  let cpu0;
  let outstanding = 0;
  let drained;
  const body = JSON.parse(payload.toString());
  const one = () => {
    const t0 = now();
    outstanding++;
    ask(body).then(
      (result) => {
        outstanding--;
        if (result?.data !== body.data) bad++;
        if (phase === 'measure') {
          hist.recordValue(Math.max(1, Math.round((now() - t0) * 1000)));
          counted++;
        }
        if (phase === 'warmup' || phase === 'measure') one();
        else if (outstanding === 0) drained?.();
      },
      () => {
        outstanding--;
        bad++;
      },
    );
  };
  for (let i = 0; i < inflight; i++) one();
  await sleep(warmupMs);
  phase = 'measure';
  cpu0 = process.cpuUsage();
  const t0 = now();
  await sleep(measureMs);
  const elapsed = (now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const c0 = counted;
  phase = 'drain';
  if (outstanding > 0) await Promise.race([new Promise((r) => (drained = r)), sleep(3000)]);
  return {
    replies: c0,
    rate: c0 / elapsed,
    clientCpuUsPerReply: c0 > 0 ? (cpu.user + cpu.system) / c0 : null,
    hist: encodeHistogram(hist),
    bad,
  };
}

/** The hand-written client: correlation by msgid in the topic (v4) or Correlation Data (v5). */
function bareAsk(c, v5) {
  const pending = new Map();
  let seq = 0;
  const responseTopic = `bare/reply/${c.options.clientId}`;
  c.on('message', (topic, payload, packet) => {
    const key = v5 ? (topic === responseTopic ? packet.properties?.correlationData?.toString() : undefined) : topic;
    const p = pending.get(key);
    if (!p) return;
    pending.delete(key);
    const env = JSON.parse(payload.toString());
    if (env.Error) p.reject(new Error(env.Error));
    else p.resolve(env.Result);
  });
  return (body) =>
    new Promise((resolve, reject) => {
      const id = String(++seq);
      const text = JSON.stringify(body);
      if (v5) {
        pending.set(id, { resolve, reject });
        c.publish('echo/HD_echo', text, { qos: 0, properties: { responseTopic, correlationData: Buffer.from(id) } });
      } else {
        const topic = `echo/HD_echo/${id}`;
        pending.set(topic, { resolve, reject });
        c.publish(topic, text, { qos: 0 });
      }
    });
}

export async function sdkrr({ port, level, client, inflight, payloadSize, warmupMs, measureMs }) {
  const url = `mqtt://127.0.0.1:${port}`;
  const payload = makePayload(payloadSize);
  const protocolVersion = level === 'v5' ? 5 : 4;
  if (client === 'sdk') {
    const g = await sdk.connect(url, { protocolVersion, reconnect: false });
    try {
      return await loop((body) => g.request('echo/HD_echo', body), { inflight, payload, warmupMs, measureMs });
    } finally {
      await g.close();
    }
  }
  const c = await mqtt.connectAsync(url, { protocolVersion, reconnectPeriod: 0 });
  try {
    return await loop(bareAsk(c, protocolVersion === 5), { inflight, payload, warmupMs, measureMs });
  } finally {
    await c.endAsync();
  }
}
