// Shared by the bench/attack scripts: the gate child (gate.mjs), asking it over IPC, a probe
// client timing request round trips, and percentiles.
import { fork } from 'node:child_process';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const mqtt = require('mqtt-packet');
const V4 = { protocolVersion: 4 };
const here = (f) => fileURLToPath(new URL(f, import.meta.url));

/** Starts gate.mjs with `options` (gate options) and node flags `execArgv`; resolves with its ports and an `ask`. */
export function startGate(options = {}, execArgv = []) {
  const child = fork(here('./gate.mjs'), [], { env: { ...process.env, ATTACK_GATE: JSON.stringify(options) }, execArgv, stdio: 'inherit' });
  const waiting = [];
  child.on('message', (m) => waiting.shift()?.(m));
  const ask = (msg) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      child.send(msg);
    });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    waiting.push((m) => resolve({ child, ask, tcpPort: m.tcpPort, wsPort: m.wsPort, stop: () => stopGate(child, ask) }));
  });
}

async function stopGate(child, ask) {
  const exited = new Promise((r) => child.once('exit', r));
  child.send({ cmd: 'stop' });
  await exited;
  void ask;
}

/** A raw MQTT 3.1.1 client over TCP that sends `echo/HD_echo/<n>` requests and times each reply, ms. */
export async function probe(port) {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true });
  const parser = mqtt.parser(V4);
  let onPacket = () => undefined;
  parser.on('packet', (p) => onPacket(p));
  socket.on('data', (d) => parser.parse(d));
  await new Promise((r) => socket.once('connect', r));
  const connack = new Promise((r) => (onPacket = r));
  socket.write(
    mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `probe-${process.pid}`, keepalive: 600 }, V4),
  );
  await connack;
  let seq = 0;
  return {
    /** One request round trip, ms (rejects after `timeout` ms). */
    roundTrip(timeout = 30_000) {
      const topic = `echo/HD_echo/${++seq}`;
      const t0 = performance.now();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply in ${timeout} ms`)), timeout);
        onPacket = (p) => {
          if (p.cmd !== 'publish' || p.topic !== topic) return;
          clearTimeout(timer);
          resolve(performance.now() - t0);
        };
        socket.write(mqtt.generate({ cmd: 'publish', topic, payload: Buffer.from('{"probe":1}'), qos: 0, retain: false, dup: false }, V4));
      });
    },
    close: () => socket.destroy(),
  };
}

/** Runs round trips every `every` ms for `ms` ms; resolves with their times, ms. */
export async function probeFor(p, ms, every = 20) {
  const times = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    times.push(await p.roundTrip());
    await new Promise((r) => setTimeout(r, every));
  }
  return times;
}

export function percentile(values, q) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export const mb = (bytes) => Math.round(bytes / 1048576);
