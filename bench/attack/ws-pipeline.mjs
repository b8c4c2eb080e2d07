// Event loop under WebSocket slow consumers: 200 WebSocket clients pipeline QoS 1 requests
// and never read (ws-flood.mjs, a child process) while a probe client (TCP, this process)
// times a request round trip every 20 ms. Reports the probe's p50/p99/max, the stalls the
// gate process saw (its own 10 ms drift watch: count over 100 ms and the longest; and the
// gate's `event-loop-stall` warn lines, over 1000 ms), and RSS. The gate runs with the demo's
// default limits. Noisy on a shared machine: run it a few times.
//
//   node bench/attack/ws-pipeline.mjs [clients=200] [seconds=20] [--cpu-prof]
//
// With --cpu-prof the gate process writes a .cpuprofile into bench/attack/profiles/ and the
// top self-time functions are printed (bench/lib/profile.mjs), then what ran in the stalls over
// 50 ms with the most gate CPU (stall-profile.mjs; STALLS=n of them, 3 unless set; all their
// windows are written beside the profile, .stalls.json). Build first: npx tsc -b.
import { fork } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mb, percentile, probe, probeFor, startGate } from './lib.mjs';
import { analyzeProfile } from '../lib/profile.mjs';
import { stallProfiles } from './stall-profile.mjs';

const args = process.argv.slice(2);
const prof = args.includes('--cpu-prof');
const [clients = 200, seconds = 20] = args.filter((a) => !a.startsWith('--')).map(Number);
const profDir = fileURLToPath(new URL('./profiles/', import.meta.url));
const execArgv = prof ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
if (prof) mkdirSync(profDir, { recursive: true });
const before = prof ? new Set(readdirSync(profDir)) : new Set();

const g = await startGate({}, execArgv);
const p = await probe(g.tcpPort);
const idle = await probeFor(p, 1000);
await g.ask({ cmd: 'reset' });
const flood = fork(fileURLToPath(new URL('./ws-flood.mjs', import.meta.url)), [g.wsPort, clients, seconds * 1000].map(String));
const floodDone = new Promise((r) => flood.once('message', r));
const times = await probeFor(p, seconds * 1000);
const s = await g.ask({ cmd: 'stats' });
const f = await floodDone;
p.close();
await g.stop();
const fmt = (t) =>
  `p50 ${percentile(t, 0.5).toFixed(1)} ms, p99 ${percentile(t, 0.99).toFixed(1)} ms, max ${Math.max(...t).toFixed(1)} ms (${t.length} round trips)`;
console.log(`idle probe: ${fmt(idle)}`);
console.log(`under ${clients} WebSocket pipeliners for ${seconds} s: probe ${fmt(times)}`);
console.log(
  `gate: stalls over 100 ms ${s.stalls.over100} (${s.stalls.over100Busy} with the gate on CPU for over half of it, at most ${s.stalls.busiest} ms CPU in one), longest ${s.stalls.longest.toFixed(0)} ms; event-loop-stall warnings ${s.stalls.warned} (longest ${s.stalls.warnedLongest} ms); RSS ${mb(s.mem.rss)} MB${s.stalls.at.length ? `; stalls at ${s.stalls.at.join(' ')}` : ''}`,
);
console.log(`attackers: ${f.sent} requests written, ${f.closed} closed by the gate or at the end`);
if (prof) {
  const file = readdirSync(profDir).find((x) => !before.has(x) && x.endsWith('.cpuprofile'));
  const r = analyzeProfile(JSON.parse(readFileSync(profDir + file, 'utf8')), fileURLToPath(new URL('../../', import.meta.url)));
  console.log(`profile ${profDir}${file}`);
  writeFileSync(`${profDir}${file}.stalls.json`, JSON.stringify(s.stalls.windows));
  console.log(JSON.stringify(r, null, 1).slice(0, 4000));
  // The stalls with the most gate CPU in them, and what ran then.
  const busiest = [...s.stalls.windows].sort((a, b) => b.cpu - a.cpu).slice(0, Number(process.env.STALLS ?? 3));
  const root = fileURLToPath(new URL('../../', import.meta.url));
  for (const w of stallProfiles(JSON.parse(readFileSync(profDir + file, 'utf8')), busiest, root)) {
    console.log(`\nstall at ${w.stall}\n self:\n  ${w.self.join('\n  ')}\n inclusive:\n  ${w.inclusive.join('\n  ')}`);
  }
}
