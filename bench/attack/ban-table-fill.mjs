// The ban-table fill attack: from `--addresses` loopback addresses (127.0.1.1, 127.0.1.2, …)
// clients reconnect with fresh client ids, each one `maxCount + 1` times so that flapping
// detection bans it, as fast as the gate's connectRate lets them, for `--seconds`. Every 5 s
// the script tries an operator ban (gate.ban then gate.unban of `operator-probe`) and reads
// the ban count; at the end a real flapper from 127.0.0.1 reconnects 40 times with one client
// id and the script counts how many of its CONNECTs were accepted (CONNACK 0).
//   node bench/attack/ban-table-fill.mjs [--addresses 40] [--seconds 80] [--concurrency 8]
// The gate (bench/attack/ban-table-gate.mjs) runs with its defaults in a child process.
import { fork } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt-packet';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ADDRESSES = arg('addresses', 40);
const SECONDS = arg('seconds', 80);
const CONCURRENCY = arg('concurrency', 8);
const PER_ID = 16; // the default flapping maxCount (15) + 1

const child = fork(fileURLToPath(new URL('./ban-table-gate.mjs', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const port = await new Promise((resolve) => child.once('message', (m) => resolve(m.port)));
let nextId = 0;
const waiting = new Map();
child.on('message', (m) => waiting.get(m.id)?.(m));
const ask = (msg) =>
  new Promise((resolve) => {
    const id = ++nextId;
    waiting.set(id, resolve);
    child.send({ ...msg, id });
  });

/** One CONNECT from `localAddress`: 'accepted', 'refused' (a CONNACK ≠ 0) or 'closed' (no CONNACK). */
function connectOnce(localAddress, clientId) {
  return new Promise((resolve) => {
    const s = netConnect({ port, host: '127.0.0.1', localAddress });
    const parser = mqtt.parser({ protocolVersion: 4 });
    let outcome = 'closed';
    parser.on('packet', (p) => {
      if (p.cmd !== 'connack') return;
      outcome = p.returnCode === 0 ? 'accepted' : 'refused';
      s.destroy();
    });
    s.on('data', (d) => parser.parse(d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(outcome));
    s.on('connect', () => s.write(mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 60 })));
  });
}

const counts = { accepted: 0, refused: 0, closed: 0 };
const deadline = Date.now() + SECONDS * 1000;
async function attacker(a, lane) {
  const localAddress = `127.0.1.${a + 1}`;
  for (let k = 0; Date.now() < deadline; k++) {
    const clientId = `atk-${a}-${lane}-${k}`;
    for (let i = 0; i < PER_ID && Date.now() < deadline;) {
      const o = await connectOnce(localAddress, clientId);
      counts[o]++;
      if (o !== 'closed') i++; // closed: connectRate; try the same one again
    }
  }
}

const started = Date.now();
const samples = [];
const probe = setInterval(async () => {
  const ban = await ask({ op: 'ban', clientId: 'operator-probe' });
  const bans = await ask({ op: 'bans' });
  samples.push({ s: Math.round((Date.now() - started) / 1000), bans: bans.bans, operatorBan: ban.ok ? 'ok' : ban.error });
}, 5000);
const lanes = [];
for (let a = 0; a < ADDRESSES; a++) for (let l = 0; l < CONCURRENCY; l++) lanes.push(attacker(a, l));
await Promise.all(lanes);
clearInterval(probe);

const flapper = { accepted: 0, refused: 0, closed: 0 };
for (let i = 0; i < 40; i++) flapper[await connectOnce('127.0.0.1', 'real-flapper')]++;
const finalBan = await ask({ op: 'ban', clientId: 'operator-probe' });
const finalBans = await ask({ op: 'bans', clientId: 'real-flapper' });
await ask({ op: 'stop' });

const total = counts.accepted + counts.refused + counts.closed;
console.log(JSON.stringify({ addresses: ADDRESSES, seconds: SECONDS, connects: total, ...counts, samples }, null, 0));
console.log(
  `after ${total} CONNECTs in ${SECONDS} s from ${ADDRESSES} addresses: ${finalBans.bans} bans held; ` +
    `operator ban ${finalBan.ok ? 'works' : `fails (${finalBan.error})`}; ` +
    `operator ban failed in ${samples.filter((x) => x.operatorBan !== 'ok').length}/${samples.length} probes; ` +
    `real flapper accepted ${flapper.accepted}/40 (refused ${flapper.refused}, closed ${flapper.closed}), banned at the end: ${finalBans.flapper}`,
);
