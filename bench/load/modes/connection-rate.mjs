// @ts-check
// Load mode `connrate`: CONNECT→CONNACK per second.
import { encodeHistogram, newHistogram, sleep } from '../../lib/common.mjs';
import { Client, now } from '../client.mjs';

/** CONNECT→CONNACK per second: `concurrency` loops connect, get CONNACK, DISCONNECT, repeat. */
export async function connrate({ target, concurrency, warmupMs, measureMs }) {
  const hist = newHistogram();
  let phase = 'warmup';
  let ok = 0;
  let failed = 0;
  const errors = new Set();
  async function loop() {
    while (phase !== 'done') {
      const c = new Client(target, { keepalive: 60 });
      const t0 = now();
      try {
        await c.connect(10000);
        if (phase === 'measure') {
          hist.recordValue(Math.max(1, Math.round((now() - t0) * 1000)));
          ok++;
        }
        c.end();
      } catch (err) {
        if (phase === 'measure') failed++;
        if (errors.size < 5) errors.add(String(err?.message ?? err));
        c.destroy();
        await sleep(5);
      }
    }
  }
  const loops = Array.from({ length: concurrency }, loop);
  await sleep(warmupMs);
  phase = 'measure';
  const t0 = now();
  await sleep(measureMs);
  const elapsed = (now() - t0) / 1000;
  const okAtEnd = ok;
  phase = 'done';
  await Promise.all(loops);
  return { connacks: okAtEnd, seconds: elapsed, rate: okAtEnd / elapsed, failed, errorSample: [...errors], hist: encodeHistogram(hist) };
}
