// @ts-check
// One closed-loop trial of one cell (transport, conns × in flight, QoS, payload) against one
// server, with the server's and the load process's CPU share; and a cell's median rate over
// trials, for the scenarios that need a closed-loop rate when request-reply did not run.
import { cpuSeconds } from './proc.mjs';
import { median } from './common.mjs';
import { serverCpu } from './rig.mjs';

/** `rr` = the scale's closed-loop part ({warmupMs, measureMs, trials}); `cell.style` overrides the server's topic scheme (`v5`). */
export async function runRrCell(rig, srv, cell, rr) {
  const l = await rig.load();
  const port = cell.transport === 'ws' ? srv.ws : srv.tcp;
  const cpu0 = serverCpu(srv);
  const lcpu0 = cpuSeconds(l.pid);
  const r = await l.request('rr', {
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
  return { ...r, serverCpuShare: cpu / wall, loadCpuShare: lcpu / wall };
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
