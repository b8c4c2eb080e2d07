// Memory under clients that read their QoS 1 pushes and never PUBACK (and then drop, leaving
// detached sessions): N raw TCP clients (this process) connect, log in (`user/HD_login`, so
// their sessions are kept for a resume when they drop), read everything and never send a
// PUBACK, while the gate (gate.mjs, its own process, the demo's default limits) sends each
// session a QoS 1 push of `kib` KiB (gate.send, one copy each) every 20 ms for `seconds`. Reports the gate's RSS and Buffers
// (memoryUsage().external, which includes arrayBuffers) before, at the peak, and after the clients dropped and a full GC
// (--expose-gc), with gate.stats().bufferedBytes / detachedBytes: the figures of the
// maxBufferedBytesTotal / maxDetachedBytesTotal bounds. The gate's heap is capped with
// --max-old-space-size=<heapMb> (the bounds' defaults are a quarter and an eighth of it), so
// the run fits a shared machine. Numbers are noisy there: run it a few times.
//
//   node bench/attack/qos1-hoard.mjs [clients=600] [seconds=20] [kib=16] [heapMb=1024]
//
// Build first: npx tsc -b.
import { connect } from 'node:net';
import { mb, mqtt, startGate } from './lib.mjs';

const [clients = 600, seconds = 20, kib = 16, heapMb = 1024] = process.argv.slice(2).map(Number);
const V4 = { protocolVersion: 4 };
const g = await startGate({ connectRate: false, flapping: false }, ['--expose-gc', `--max-old-space-size=${heapMb}`]);

function hoarder(i) {
  return new Promise((resolve, reject) => {
    const socket = connect({ port: g.tcpPort, host: '127.0.0.1' });
    const parser = mqtt.parser(V4);
    let state = 0;
    parser.on('packet', (p) => {
      if (p.cmd === 'connack' && state === 0) {
        state = 1;
        socket.write(
          mqtt.generate(
            {
              cmd: 'publish',
              topic: 'user/HD_login/1',
              payload: Buffer.from(JSON.stringify({ userId: `hoarder-${i}` })),
              qos: 0,
              retain: false,
              dup: false,
            },
            V4,
          ),
        );
      } else if (p.cmd === 'publish' && p.topic === 'gate/session' && state === 1) {
        state = 2;
        resolve(socket);
      }
    });
    socket.on('data', (d) => parser.parse(d)); // reads everything, never acknowledges
    socket.on('error', () => undefined);
    socket.once('connect', () =>
      socket.write(
        mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `hoard-${i}`, keepalive: 600 }, V4),
      ),
    );
    setTimeout(() => reject(new Error(`client ${i}: no login in 30 s`)), 30_000).unref();
  });
}

const show = (label, s) =>
  console.log(
    `${label}: RSS ${mb(s.mem.rss)} MB, Buffers ${mb(s.mem.external)} MB, heap ${mb(s.mem.heapUsed)} MB; bufferedBytes ${mb(s.stats.bufferedBytes)} MB, detachedBytes ${mb(s.stats.detachedBytes ?? 0)} MB, droppedMemory ${s.stats.droppedMemory}, connections ${s.stats.connections}, detached ${s.counts.detached}`,
  );
await g.ask({ cmd: 'gc' });
show('before', await g.ask({ cmd: 'stats' }));
const sockets = [];
for (let i = 0; i < clients; i += 50)
  sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, clients - i) }, (_, k) => hoarder(i + k)))));
let peak = { mem: { rss: 0 } };
const end = Date.now() + seconds * 1000;
while (Date.now() < end) {
  await g.ask({ cmd: 'sendEach', qos: 1, bytes: kib * 1024 });
  const s = await g.ask({ cmd: 'stats' });
  if (s.mem.rss > peak.mem.rss) peak = s;
  await new Promise((r) => setTimeout(r, 20));
}
show(`peak during ${seconds} s of QoS 1 pushes to ${clients} clients that never PUBACK`, peak);
show('at the end, clients still connected', await g.ask({ cmd: 'stats' }));
for (const s of sockets) s.destroy();
await new Promise((r) => setTimeout(r, 2000));
await g.ask({ cmd: 'gc' });
show('clients dropped (sessions detached), after a full GC', await g.ask({ cmd: 'stats' }));
await new Promise((r) => setTimeout(r, 3000));
await g.ask({ cmd: 'gc' });
await g.ask({ cmd: 'gc' });
show('3 s later, after two more full GCs', await g.ask({ cmd: 'stats' }));
await g.stop();
