// Shared helpers of the benchmark suite: payloads, the echo handler used by the non-mqgate
// servers (the same work mqgate's router + echo module do), histograms, IPC plumbing, the
// number format of the summary lines.
import { createRequire } from 'node:module';
import hdr from 'hdr-histogram-js';

/** A JSON object body of exactly `size` bytes: {"data":"xxxx…"}. */
export function makePayload(size) {
  const overhead = '{"data":""}'.length;
  if (size < overhead) throw new Error(`payload size ${size} < ${overhead}`);
  return Buffer.from(`{"data":"${'x'.repeat(size - overhead)}"}`);
}

/**
 * mqgate's request and reply bodies, the built packages/gate/src/routing/envelope.ts (it imports
 * nothing, so the other servers load no more than these two functions): a JSON object body →
 * object, else bytes; the reply envelope {"Trace","Error","Result"}, bytes going out unwrapped.
 */
export const { decodePayload, encodeReply } = createRequire(import.meta.url)('../../packages/gate/dist/routing/envelope.js');

/** The echo handler every server runs: what mqgate's demo echo module does. */
export function echo(trace, payload) {
  return encodeReply(trace, '', decodePayload(payload));
}

/** A latency histogram in microseconds (1 µs .. 60 s, 3 significant digits). */
export function newHistogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

export function encodeHistogram(h) {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(s) {
  return hdr.decodeFromCompressedBase64(s);
}

/** Merges encoded histograms; returns {count, p50, p99, p999, max, mean} in ms. */
export function summarize(encoded) {
  const h = newHistogram();
  for (const e of encoded) if (e) h.add(decodeHistogram(e));
  if (h.totalCount === 0) return { count: 0, p50: null, p99: null, p999: null, max: null, mean: null };
  const ms = (us) => Math.round(us) / 1000;
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

export function median(xs) {
  const a = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((x, y) => x - y);
  if (a.length === 0) return null;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The child side of the runner's IPC: `handlers[cmd](msg)` answers each request
 * `{id, cmd, ...}` with `{id, ok, result|error}`. A lost parent (IPC closed) ends the child.
 */
export function serveIpc(handlers) {
  process.on('message', async (msg) => {
    if (!msg || typeof msg !== 'object' || msg.id === undefined) return;
    const h = handlers[msg.cmd];
    try {
      if (!h) throw new Error(`unknown command ${msg.cmd}`);
      const result = await h(msg);
      process.send?.({ id: msg.id, ok: true, result });
    } catch (err) {
      process.send?.({ id: msg.id, ok: false, error: err instanceof Error ? err.stack || err.message : String(err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

/** Memory of this process after two full GCs (needs --expose-gc). */
export function memoryAfterGc() {
  if (global.gc) {
    global.gc();
    global.gc();
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
}

/** Standard server commands: mem, cpu, stop. */
export function serverCommands(extra = {}, onStop = async () => {}) {
  return {
    mem: () => memoryAfterGc(),
    cpu: () => process.cpuUsage(),
    stop: async () => {
      await Promise.race([onStop(), sleep(5000)]);
      setTimeout(() => process.exit(0), 20);
      return true;
    },
    ...extra,
  };
}

export function config() {
  return JSON.parse(process.env.BENCH_CONFIG || '{}');
}

/** A number for a summary line: thousands separated from 100 up, else 2 decimals; '-' when missing. */
export const fmt = (n) =>
  n === null || n === undefined ? '-' : n >= 100 ? Math.round(n).toLocaleString('en-US') : String(Math.round(n * 100) / 100);
