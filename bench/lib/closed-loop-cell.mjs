// One closed-loop trial of one cell (transport, conns × in flight, QoS, payload) against one
// server, with the server's and the load process's CPU share; and a cell's median rate over
// trials, for the scenarios that need a closed-loop rate when request-reply did not run.
import { cpuSeconds } from './proc.mjs';
import { median } from './common.mjs';
import { serverCpu } from './rig.mjs';

/** `rr` = the scale's closed-loop part ({warmupMs, measureMs, trials}). */
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
    style: srv.kind === 'mosquitto' ? 'mosquitto' : 'gate',
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
