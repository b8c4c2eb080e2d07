// The liveness probe: a well-behaved client connects (TCP or WebSocket, protocol level 3, 4
// or 5), calls echo/HD_echo and must get its reply within `timeout` ms: mqant's
// `module/HD_handler/msgid` form at 3 and 4, Response Topic + Correlation Data at 5.
import { connect } from 'node:net';
import mqtt from 'mqtt-packet';
import WebSocket from 'ws';

/**
 * @param target { tcpPort, wsPort }
 * @param opts { transport: 'tcp' | 'ws', level: 3 | 4 | 5, timeout: ms, n: probe number }
 * @returns {Promise<{ ok: boolean, ms: number, transport, level, error?: string }>}
 */
export function probe(target, { transport, level, timeout, n }) {
  const started = Date.now();
  const opts = { protocolVersion: level === 5 ? 5 : 4 };
  const parser = mqtt.parser(opts);
  const requestTopic = level === 5 ? 'echo/HD_echo' : `echo/HD_echo/probe-${n}`;
  const replyTopic = level === 5 ? `fuzz/probe/${n}` : requestTopic;
  const correlation = Buffer.from(`probe-${n}`);
  let stage = transport === 'ws' ? 'no WebSocket upgrade' : 'no TCP connection';
  return new Promise((resolve) => {
    let done = false;
    let io;
    const finish = (error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (io) {
        if (!error) io.send({ cmd: 'disconnect' });
        io.close();
      }
      resolve({ ok: !error, ms: Date.now() - started, transport, level, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(`${stage} within ${timeout} ms`), timeout);
    parser.on('error', (err) => finish(`the gate sent a malformed packet: ${err.message}`));
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') {
        const code = level === 5 ? p.reasonCode : p.returnCode;
        if (code !== 0) return finish(`CONNACK ${code}`);
        stage = 'no reply';
        const publish = {
          cmd: 'publish',
          topic: requestTopic,
          payload: Buffer.from(JSON.stringify({ probe: n })),
          qos: 1,
          messageId: 1 + (n % 65535),
          retain: false,
          dup: false,
        };
        if (level === 5) publish.properties = { responseTopic: replyTopic, correlationData: correlation };
        io.send(publish);
      } else if (p.cmd === 'publish' && p.topic === replyTopic) {
        let reply;
        try {
          reply = JSON.parse(p.payload.toString());
        } catch {
          return finish(`reply is not JSON: ${p.payload.toString().slice(0, 200)}`);
        }
        if (reply?.Result?.probe !== n) return finish(`unexpected reply ${p.payload.toString().slice(0, 200)}`);
        if (level === 5 && !correlation.equals(p.properties?.correlationData ?? Buffer.alloc(0))) return finish('reply without the Correlation Data');
        finish();
      }
    });
    const connectPacket = {
      cmd: 'connect',
      protocolId: level === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: level,
      clientId: `fuzz-probe-${n}`,
      clean: true,
      keepalive: 30,
    };
    const onOpen = () => {
      stage = 'no CONNACK';
      io.send(connectPacket);
    };
    const onClose = () => finish(`connection closed by the gate (${stage})`);
    if (transport === 'ws') {
      const ws = new WebSocket(`ws://127.0.0.1:${target.wsPort}/mqtt`, ['mqtt'], { perMessageDeflate: false });
      io = { send: (p) => ws.readyState === WebSocket.OPEN && ws.send(mqtt.generate(p, opts)), close: () => ws.terminate() };
      ws.on('open', onOpen);
      ws.on('message', (d) => parser.parse(d));
      ws.on('error', (err) => finish(`${stage}: ${err.message}`));
      ws.on('close', onClose);
    } else {
      const socket = connect({ port: target.tcpPort, host: '127.0.0.1', noDelay: true });
      io = { send: (p) => socket.write(mqtt.generate(p, opts)), close: () => socket.destroy() };
      socket.on('connect', onOpen);
      socket.on('data', (d) => parser.parse(d));
      socket.on('error', (err) => finish(`${stage}: ${err.message}`));
      socket.on('close', onClose);
    }
  });
}
