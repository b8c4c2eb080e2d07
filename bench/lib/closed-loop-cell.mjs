// @ts-check
// One closed-loop trial of one cell (transport, conns × in flight, QoS, payload) against one
// server, with the server's and the load process's CPU share; and a cell's median rate over
// trials, for the scenarios that need a closed-loop rate when request-reply did not run.
import { cpuSeconds } from './proc.mjs';
import { median } from './common.mjs';
import { serverCpu } from './rig.mjs';

/**
 * `rr` = the scale's closed-loop part ({warmupMs, measureMs, trials}); `cell.style` overrides the
 * server's topic scheme (`v5`). Besides the load mode's numbers: `serverCpuShare` and
 * `loadCpuShare` (cores, over the whole trial), `cpuUsPerReply` (µs of server CPU per reply over
 * the measured window only: the CPU of `srv.pids` read by the load process at the window's
 * edges ÷ the window's replies; = ms per 1,000 replies) and `processCpuUsPerReply` ({name: µs}
 * for every process of `srv.cpuPids` (default: `srv.pids`, named by `srv.kind`), plus `load`).
 */
export async function runRrCell(rig, srv, cell, rr) {
  const l = await rig.load();
  const port = cell.transport === 'ws' ? srv.ws : srv.tcp;
  const named = srv.cpuPids ?? srv.pids.map((pid, i) => ({ name: srv.pids.length > 1 ? `${srv.kind} ${i + 1}` : srv.kind, pid }));
  const cpu0 = serverCpu(srv);
  const lcpu0 = cpuSeconds(l.pid);
  const r = await l.request('rr', {
    cpuPids: named.map((n) => n.pid),
    target: { transport: cell.transport, port },
    conns: cell.conns,
    inflight: cell.inflight,
    qos: cell.qos,
    payloadSize: cell.payload,
    warmupMs: rr.warmupMs,
    measureMs: rr.measureMs,
    style: cell.style ?? (srv.kind === 'mosquitto' ? 'mosquitto' : 'gate'),
  });
  const cpu = serverCpu(srv) - cpu0;
  const lcpu = (cpuSeconds(l.pid) ?? 0) - (lcpu0 ?? 0);
  // CPU is sampled over the whole trial (connect + warm-up + measure + drain), so it is
  // normalised by the trial's wall time, not only the measured second.
  const wall = (rr.warmupMs + rr.measureMs) / 1000;
  const perReply = (sec) => (sec === null || !(r.replies > 0) ? null : (sec / r.replies) * 1e6);
  const ofServer = named.filter((n) => srv.pids.includes(n.pid)).map((n) => r.windowCpu[named.indexOf(n)]);
  const processCpuUsPerReply = Object.fromEntries(named.map((n, i) => [n.name, perReply(r.windowCpu[i])]));
  processCpuUsPerReply.load = perReply(r.loadCpu);
  return {
    ...r,
    serverCpuShare: cpu / wall,
    loadCpuShare: lcpu / wall,
    cpuUsPerReply: ofServer.some((x) => x === null) ? null : perReply(ofServer.reduce((a, b) => a + b, 0)),
    processCpuUsPerReply,
  };
}

/** Median replies/s of `rr.trials` trials of `cell` on `srv` (what request-reply reports for it). */
export async function probeRate(rig, srv, cell, rr) {
  const rates = [];
  for (let t = 0; t < rr.trials; t++) rates.push((await runRrCell(rig, srv, cell, rr)).rate);
  return median(rates);
}

/**
 * Runs `rr.trials` trials of every cell, interleaved across cells so drift on the machine hits
 * all of them alike; each trial is appended to `cell.trials`. A trial that would end past
 * `deadline` is skipped once its cell has one. Resolves with whether any was skipped.
 */
export async function runTrials(rig, running, cells, rr, deadline) {
  let truncated = false;
  for (let t = 0; t < rr.trials; t++) {
    for (const cell of cells) {
      if (Date.now() > deadline - (rr.warmupMs + rr.measureMs + 1500) && cell.trials.length > 0) {
        truncated = true;
        continue;
      }
      cell.trials.push(await runRrCell(rig, running.get(cell.server), cell, rr));
    }
  }
  return truncated;
}
