// Attackers for ws-pipeline.mjs (a child process, so their work is not the probe's): N
// WebSocket clients that CONNECT, then pipeline QoS 1 requests `echo/HD_echo/<n>` as fast as
// their sockets take them and never read again (their sockets are paused). Args: port clients ms.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');
const mqtt = require('mqtt-packet');
const V4 = { protocolVersion: 4 };
const [port, clients, ms] = process.argv.slice(2).map(Number);
const end = Date.now() + ms;
let sent = 0;
let closed = 0;

function attacker(i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'], { perMessageDeflate: false });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      closed++;
      resolve();
    });
    ws.once('open', () => {
      ws.send(mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `wsflood-${i}`, keepalive: 600 }, V4));
      ws.once('message', () => {
        ws._socket.pause(); // never read again
        let n = 0;
        const body = Buffer.from('{"pipelined":true,"pad":"0123456789012345678901234567890123456789"}');
        const pump = () => {
          if (ws.readyState !== WebSocket.OPEN) return;
          if (Date.now() > end) return void ws.terminate();
          while (ws.bufferedAmount < 256 * 1024) {
            ws.send(
              mqtt.generate(
                { cmd: 'publish', topic: `echo/HD_echo/${++n}`, payload: body, qos: 1, messageId: (n % 65535) + 1, retain: false, dup: false },
                V4,
              ),
            );
            sent++;
          }
          setTimeout(pump, 5);
        };
        pump();
      });
    });
  });
}

await Promise.all(Array.from({ length: clients }, (_, i) => attacker(i)));
process.send?.({ sent, closed });
