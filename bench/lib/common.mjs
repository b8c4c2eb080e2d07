// Shared helpers of the benchmark suite: payloads, the echo handler used by the non-mqgate
// servers (the same work mqgate's router + echo module do), histograms, IPC plumbing, the
// number format of the summary lines.
import hdr from 'hdr-histogram-js';

/** A JSON object body of exactly `size` bytes: {"data":"xxxx…"}. */
export function makePayload(size) {
  const overhead = '{"data":""}'.length;
  if (size < overhead) throw new Error(`payload size ${size} < ${overhead}`);
  return Buffer.from(`{"data":"${'x'.repeat(size - overhead)}"}`);
}

function isSpace(b) {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** mqgate's decodePayload (packages/gate/src/routing/router.ts): a JSON object body → object, else bytes. */
export function decodePayload(buf) {
  let start = 0;
  let end = buf.length - 1;
  while (start <= end && isSpace(buf[start])) start++;
  while (end > start && isSpace(buf[end])) end--;
  if (end - start < 1 || buf[start] !== 0x7b || buf[end] !== 0x7d) return buf;
  try {
    const v = JSON.parse(buf.toString('utf8'));
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch {
    /* bytes */
  }
  return buf;
}

/** mqgate's reply envelope {"Trace","Error","Result"}; bytes go out unwrapped. */
export function encodeReply(trace, error, result) {
  if (error === '' && Buffer.isBuffer(result)) return result;
  return Buffer.from(JSON.stringify({ Trace: trace, Error: error, Result: result === undefined ? null : result }));
}

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
