// @ts-check
// The targets of one run, each a ratio measured in that run: issue 21's list 1–8 (ids '1a' …
// '8c'), then the standing targets of earlier issues. Every row is {id, target, measured,
// verdict}: verdict 'met', 'missed' (with what bounds it where the run shows it) or
// 'not measured'.
import { mqgateRatios } from '../scenarios/mqtt5.mjs';

export const num = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '-' : (Math.round(x * 10 ** d) / 10 ** d).toString());
export const int = (x) => (x === null || x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
export const kib = (b) => (b === null || b === undefined ? '-' : num(b / 1024, 1));

/** The limits of issue 21, read by the report's ✗ marks too. */
export const LIMITS = {
  rateVsBare: 0.9, // saturated cells: mqgate ≥ 0.9× bare
  rateVsAedes: 1.5, // saturated cells: mqgate ≥ 1.5× aedes
  cpuVsBare: 1.1, // every cell: mqgate CPU per reply ≤ 1.1× bare
  cpuVsAedes: 0.7, // every cell: ≤ 0.7× aedes
  openP99Ms: 5,
  openP99VsBare: 1.2,
  idleVsBare: 1.1,
  connackVsBare: 1.0,
  fanoutVsBare: 1.1,
  v5VsV311Cpu: 1.1,
  remoteVsInProcess: 0.5,
  remoteAddedP50Ms: 0.3,
};

/** A saturated cell: more than one request in flight (100 × 10 in a full run); 1 × 1 is latency-bound. */
export const saturated = (c) => c.conns * c.inflight > 1;

export function scenario(results, prefix) {
  const e = Object.entries(results.scenarios).find(([k]) => k.startsWith(prefix));
  return e ? { name: e[0], ...e[1] } : null;
}
const okData = (results, prefix) => {
  const s = scenario(results, prefix);
  return s?.status === 'ok' ? s.data : null;
};
const why = (results, prefix) => {
  const s = scenario(results, prefix);
  return s ? (s.note ?? s.error ?? s.status) : 'not measured';
};

/** mqgate ÷ `other` of `metric` in every cell both measured. */
export function cellRatios(cells, other, metric) {
  const out = [];
  for (const c of cells.filter((x) => x.server === 'mqgate')) {
    const o = cells.find((x) => x.server === other && x.key === c.key);
    const a = metric(c);
    const b = o ? metric(o) : null;
    if (a > 0 && b > 0) out.push({ key: c.key, ratio: a / b });
  }
  return out;
}

/** A row over cells: `ok(ratio)` per cell; worst = lowest (`higherIsBetter`) or highest. */
function cellsRow(id, target, rs, ok, higherIsBetter) {
  if (rs.length === 0) return { id, target, measured: 'not measured', verdict: 'not measured' };
  const worst = rs.reduce((a, b) => ((higherIsBetter ? b.ratio < a.ratio : b.ratio > a.ratio) ? b : a));
  const met = rs.filter((r) => ok(r.ratio)).length;
  const lo = Math.min(...rs.map((r) => r.ratio));
  const hi = Math.max(...rs.map((r) => r.ratio));
  return {
    id,
    target,
    measured: `${met} of ${rs.length} cells meet it; worst ${num(worst.ratio)}× (${worst.key}); range ${num(lo)}–${num(hi)}×`,
    verdict: met === rs.length ? 'met' : 'missed',
    cells: rs.map((r) => ({ key: r.key, ratio: Math.round(r.ratio * 100) / 100 })),
  };
}

const verdict = (ok) => (ok ? 'met' : 'missed');

function throughputAndCpu(cells) {
  const sat = cells.filter(saturated);
  const rate = (c) => c.rate;
  const cpu = (c) => c.cpuUsPerReply;
  return [
    cellsRow(
      '1a',
      `Throughput at every saturated cell (many × in flight; TCP, WS; QoS 0, 1; 64 B, 4 KiB) ≥ ${LIMITS.rateVsBare}× bare`,
      cellRatios(sat, 'bare', rate),
      (r) => r >= LIMITS.rateVsBare,
      true,
    ),
    cellsRow(
      '1b',
      `Throughput at every saturated cell ≥ ${LIMITS.rateVsAedes}× aedes`,
      cellRatios(sat, 'aedes', rate),
      (r) => r >= LIMITS.rateVsAedes,
      true,
    ),
    cellsRow(
      '2a',
      `Server CPU per reply at every closed-loop cell, 1 × 1 included ≤ ${LIMITS.cpuVsBare}× bare`,
      cellRatios(cells, 'bare', cpu),
      (r) => r <= LIMITS.cpuVsBare,
      false,
    ),
    cellsRow(
      '2b',
      `Server CPU per reply at every closed-loop cell ≤ ${LIMITS.cpuVsAedes}× aedes`,
      cellRatios(cells, 'aedes', cpu),
      (r) => r <= LIMITS.cpuVsAedes,
      false,
    ),
  ];
}

function latency(results) {
  const ol = okData(results, 'open-loop');
  const mg = ol?.find((o) => o.server === 'mqgate');
  const bare = ol?.find((o) => o.server === 'bare');
  const rows = [
    {
      id: '3a',
      target: `Open-loop p99 < ${LIMITS.openP99Ms} ms at 50 % of mqgate's own peak`,
      measured: mg ? `p99 ${mg.latency.p99} ms at ${int(mg.rateAsked)} req/s (peak ${int(mg.peak)}/s)` : why(results, 'open-loop'),
      verdict: mg ? verdict(mg.latency.p99 < LIMITS.openP99Ms) : 'not measured',
    },
  ];
  const at = mg?.common && bare?.common;
  const setter = ol?.find((o) => o.common?.setBy);
  rows.push({
    id: '3b',
    target: `At one offered load common to all servers (the lowest of their 50 % points), mqgate's p99 ≤ ${LIMITS.openP99VsBare}× bare's`,
    measured: at
      ? `at ${int(mg.common.rateAsked)} req/s (${setter?.server ?? '?'}'s 50 % point): mqgate p99 ${mg.common.latency.p99} ms, bare ${bare.common.latency.p99} ms = ${num(mg.common.latency.p99 / bare.common.latency.p99)}×`
      : mg
        ? 'no common-load run for mqgate and bare'
        : why(results, 'open-loop'),
    verdict: at ? verdict(mg.common.latency.p99 <= LIMITS.openP99VsBare * bare.common.latency.p99) : 'not measured',
  });
  return rows;
}

function idleMemory(results) {
  const rows = [];
  for (const transport of ['tcp', 'ws']) {
    const id = transport === 'tcp' ? '4a' : '4b';
    const target = `Idle memory per ${transport === 'tcp' ? 'TCP' : 'WebSocket'} connection ≤ ${LIMITS.idleVsBare}× bare at 10,000 and at 19,744 connections (RSS and heap; met when both are)`;
    const mg = okData(results, `idle memory mqgate ${transport}`);
    const bare = okData(results, `idle memory bare ${transport}`);
    if (!mg || !bare) {
      rows.push({
        id,
        target,
        measured: mg ? why(results, `idle memory bare ${transport}`) : why(results, `idle memory mqgate ${transport}`),
        verdict: 'not measured',
      });
      continue;
    }
    let ok = true;
    const parts = mg.levels.map((l, i) => {
      const b = bare.levels[i];
      if (!b) return `${int(l.open)}: no bare level`;
      const rss = l.rssPerConn / b.rssPerConn;
      const heap = l.heapPerConn / b.heapPerConn;
      if (!(rss <= LIMITS.idleVsBare && heap <= LIMITS.idleVsBare) || l.open < l.attempted) ok = false;
      const short = l.open < l.attempted ? ` (mqgate opened ${int(l.open)} of ${int(l.attempted)})` : '';
      return `${int(l.open)} conns: RSS ${kib(l.rssPerConn)} vs ${kib(b.rssPerConn)} KiB = ${num(rss)}×, heap ${kib(l.heapPerConn)} vs ${kib(b.heapPerConn)} KiB = ${num(heap)}×${short}`;
    });
    rows.push({ id, target, measured: parts.join('; '), verdict: verdict(ok) });
  }
  return rows;
}

function connackRate(results) {
  const rows = [];
  for (const [id, prefix, label] of [
    ['5a', 'connection rate (tcp', 'without an authenticate hook'],
    ['5b', 'connection rate with a Redis', 'with an authenticate hook (one Redis GET per CONNECT; bare does the same GET before its CONNACK)'],
  ]) {
    const target = `CONNACK rate ≥ ${LIMITS.connackVsBare}× bare, ${label}`;
    const d = okData(results, prefix);
    const mg = d?.find((o) => o.server === 'mqgate');
    const bare = d?.find((o) => o.server === 'bare');
    if (!mg || !bare) {
      rows.push({ id, target, measured: why(results, prefix), verdict: 'not measured' });
      continue;
    }
    const aedes = d.find((o) => o.server === 'aedes');
    const r = mg.rate / bare.rate;
    rows.push({
      id,
      target,
      measured: `mqgate ${int(mg.rate)}/s, bare ${int(bare.rate)}/s = ${num(r)}×${aedes ? ` (aedes ${int(aedes.rate)}/s)` : ''}`,
      verdict: verdict(r >= LIMITS.connackVsBare),
    });
  }
  return rows;
}

function fanOut(results) {
  const d = okData(results, 'push fan-out');
  const mg = d?.find((o) => o.server === 'mqgate');
  const bare = d?.find((o) => o.server === 'bare');
  const target = `Fan-out to 10,000 sessions: time to the last delivery ≤ ${LIMITS.fanoutVsBare}× bare's`;
  if (!mg?.lastMs || !bare?.lastMs)
    return [{ id: '6', target, measured: d ? 'a server did not complete a round' : why(results, 'push fan-out'), verdict: 'not measured' }];
  const r = mg.lastMs / bare.lastMs;
  return [
    {
      id: '6',
      target,
      measured: `${int(mg.sessions)} sessions: mqgate ${num(mg.lastMs, 1)} ms, bare ${num(bare.lastMs, 1)} ms = ${num(r)}× (median of rounds)`,
      verdict: verdict(r <= LIMITS.fanoutVsBare),
    },
  ];
}

function mqtt5(results) {
  const m5 = scenario(results, 'request-reply mqtt5');
  const rs = m5?.status === 'ok' ? mqgateRatios(m5.data) : [];
  const bare = m5?.status === 'ok' ? m5.data.filter((d) => d.server === 'bare') : [];
  const bareRatio = (qos) => {
    const a = bare.find((d) => d.qos === qos && d.level === 'v3.1.1');
    const b = bare.find((d) => d.qos === qos && d.level === 'v5');
    return a?.cpuUsPerRequest && b?.cpuUsPerRequest ? b.cpuUsPerRequest / a.cpuUsPerRequest : null;
  };
  return [
    {
      id: '7',
      target: `MQTT 5 request/response (Response Topic) ≤ ${LIMITS.v5VsV311Cpu}× the 3.1.1 path's server CPU per reply (mqgate)`,
      measured: rs.length
        ? rs.map((r) => `QoS ${r.qos}: ${num(r.cpuRatio)}× CPU (bare ${num(bareRatio(r.qos))}×), ${num(r.rateRatio)}× throughput`).join('; ')
        : (m5?.note ?? m5?.error ?? 'not measured'),
      verdict: rs.length ? verdict(rs.every((r) => r.cpuRatio <= LIMITS.v5VsV311Cpu)) : 'not measured',
    },
  ];
}

/** `gate 20 / module 15 / redis-server 8 / load 12 µs per reply, 1.9 cores in all` */
export function processCpuText(o) {
  const p = o.processCpuUsPerReply ?? {};
  const parts = Object.entries(p).map(([k, v]) => `${k} ${num(v, 1)}`);
  return parts.length ? `${parts.join(' / ')} µs CPU per reply, ${num(o.coresUsed)} cores in all` : '';
}

function remote(results) {
  const cores = results.machine.cpus;
  const bound = (os) =>
    os.some((o) => o.coresUsed >= 0.9 * cores)
      ? `; bound: the machine's ${cores} cores (the processes used ${os.map((o) => num(o.coresUsed)).join(', ')})`
      : '';
  const rows = [];
  const one = [];
  for (const [id, kind, label] of [
    ['8a', 'redis transport: request/reply', 'Redis'],
    ['8b', 'nats transport', 'NATS'],
  ]) {
    const target = `Remote RPC over ${label} ≥ ${LIMITS.remoteVsInProcess}× in-process at 100 × 10 (QoS 0 and 1)`;
    const d = okData(results, kind);
    if (!d) {
      rows.push({ id, target, measured: why(results, kind), verdict: 'not measured' });
      continue;
    }
    const big = d.filter(saturated);
    one.push(...d.filter((o) => !saturated(o)).map((o) => ({ ...o, label })));
    const ok = big.length > 0 && big.every((o) => o.ratio >= LIMITS.remoteVsInProcess);
    const others = scenario(results, kind)?.foreignCores;
    rows.push({
      id,
      target,
      measured:
        big.map((o) => `QoS ${o.qos}: ${int(o.rate)}/s = ${num(o.ratio)}× (${processCpuText(o)})`).join('; ') +
        (others === undefined ? '' : `; processes not of this run used ${others} cores meanwhile`),
      verdict: ok ? 'met' : `missed${bound(big)}`,
    });
  }
  const target = `Remote RPC adds ≤ ${LIMITS.remoteAddedP50Ms} ms p50 at 1 × 1 (Redis and NATS)`;
  if (one.length === 0) rows.push({ id: '8c', target, measured: 'not measured', verdict: 'not measured' });
  else
    rows.push({
      id: '8c',
      target,
      measured: one
        .map((o) => `${o.label} QoS ${o.qos}: +${num(o.addedP50, 3)} ms p50 (+${num(o.addedP99, 3)} p99; ${processCpuText(o)})`)
        .join('; '),
      verdict: verdict(one.every((o) => o.addedP50 !== null && o.addedP50 <= LIMITS.remoteAddedP50Ms)),
    });
  return rows;
}

/** Targets of earlier issues that still stand. */
function standing(results) {
  const rows = [];
  const mg = okData(results, 'idle memory mqgate tcp');
  const reached = mg ? Math.max(...mg.levels.map((l) => l.open)) : 0;
  const hard = results.machine.fdHardLimit;
  const last = mg?.levels.at(-1);
  rows.push({
    id: 'e1',
    target: '100,000 idle connections in one gate process (if limits allow)',
    measured:
      hard < 100_000
        ? `not allowed here: RLIMIT_NOFILE hard limit is ${int(hard)}, so the suite stops at ${int(reached)} (0 failures: ${mg ? mg.levels.every((l) => l.failed === 0) : '-'}); at ${kib(last?.rssPerConn)} KiB RSS each, 100,000 would be ≈ ${last ? num((last.rssPerConn * 100_000) / 2 ** 30) : '-'} GiB + base`
        : `reached ${int(reached)}`,
    verdict: hard < 100_000 ? 'not testable (fd limit)' : verdict(reached >= 100_000),
  });
  const st = okData(results, 'redis storage');
  rows.push({
    id: 'e2',
    target: 'An idle bound session costs ≤ 1 Redis write per heartbeat interval',
    measured: st
      ? `${st.modes.map((m) => `${m.mode}: ${num(m.writesPerSessionPerHeartbeat, 3)}`).join(', ')} writes/session/interval (interval ${st.heartbeatMs} ms, RedisStorage, in-process transport)`
      : why(results, 'redis storage'),
    verdict: st ? verdict(Math.max(...st.modes.filter((m) => m.mode !== 'active').map((m) => m.writesPerSessionPerHeartbeat)) <= 1) : 'not measured',
  });
  const sdk = okData(results, 'sdk request-reply');
  rows.push({
    id: 'e3',
    target: 'The SDK request/response path costs ≤ 1.2× a bare MQTT.js publish/message round trip (client CPU per reply)',
    measured: sdk
      ? sdk.ratios.map((r) => `${r.level} ×${r.inflight}: ${num(r.cpuRatio)}× CPU, ${num(r.rateRatio)}× time`).join('; ')
      : why(results, 'sdk request-reply'),
    verdict: sdk ? verdict(sdk.worstCpuRatio <= 1.2) : 'not measured',
  });
  return rows;
}

/** Every target of the run, issue 21's first (1a … 8c), then the standing ones (e1 …). */
export function evaluateTargets(results, cells) {
  return [
    ...throughputAndCpu(cells),
    ...latency(results),
    ...idleMemory(results),
    ...connackRate(results),
    ...fanOut(results),
    ...mqtt5(results),
    ...remote(results),
    ...standing(results),
  ];
}
