// Sends one case on a fresh connection (TCP, or WebSocket with the `mqtt` subprotocol) and
// says what the gate did with it:
//   closed   the gate closed the connection (after answering or not);
//   answered the gate wrote to it and kept it open (nothing more came for `settle` ms);
//   hang     the gate neither wrote nor closed within `timeout` ms of the last write;
//   connect-error  the connection or the WebSocket upgrade failed.
// Every chunk is its own write (TCP, no Nagle) or its own frame (WebSocket), each sent after
// the previous one was handed to the kernel.
import { connect } from 'node:net';
import WebSocket from 'ws';

/**
 * @param kase a case from buildCase()
 * @param target { tcpPort, wsPort }
 * @param opts.timeout ms the gate has to answer or close after the last write
 * @param opts.settle ms of silence after an answer before the case counts as answered
 * @returns {Promise<{ outcome, answered: boolean, bytesIn: number, ms: number, error?: string }>}
 */
export function runCase(kase, target, { timeout, settle }) {
  return kase.transport === 'ws' ? runWs(kase, target, timeout, settle) : runTcp(kase, target, timeout, settle);
}

/** The case's state machine, shared by both transports; `io` writes a chunk and ends the connection. */
function driver(kase, timeout, settle, io, resolve) {
  const started = Date.now();
  let answered = false;
  let bytesIn = 0;
  let writing = true;
  let done = false;
  let timer;
  let error;
  const finish = (outcome) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    io.destroy();
    resolve({ outcome, answered, bytesIn, ms: Date.now() - started, ...(error ? { error } : {}) });
  };
  const arm = (ms, onFire) => {
    clearTimeout(timer);
    timer = setTimeout(onFire, ms);
  };
  const deadline = () => arm(timeout, () => finish(answered ? 'answered' : 'hang'));
  return {
    opened: async () => {
      deadline();
      for (const ch of kase.chunks) {
        if (done) return;
        const ok = await io.write(ch);
        if (!ok || done) return;
        if (!answered) deadline();
      }
      writing = false;
      if (answered) arm(settle, () => finish('answered'));
      else deadline();
    },
    data: (n) => {
      answered = true;
      bytesIn += n;
      if (!writing) arm(settle, () => finish('answered'));
    },
    closed: () => finish('closed'),
    failedToOpen: (err) => {
      error = err;
      finish('connect-error');
    },
    noteError: (err) => {
      error ??= err;
    },
    get done() {
      return done;
    },
  };
}

function runTcp(kase, target, timeout, settle) {
  return new Promise((resolve) => {
    let opened = false;
    const socket = connect({ port: target.tcpPort, host: '127.0.0.1', noDelay: true });
    const io = {
      write: (ch) => new Promise((ok) => socket.write(ch.bytes, (err) => ok(!err))),
      destroy: () => socket.destroy(),
    };
    const d = driver(kase, timeout, settle, io, resolve);
    socket.on('connect', () => {
      opened = true;
      d.opened();
    });
    socket.on('data', (b) => d.data(b.length));
    socket.on('error', (err) => (opened ? d.noteError(err.code ?? err.message) : d.failedToOpen(err.code ?? err.message)));
    socket.on('close', () => opened && d.closed());
  });
}

function runWs(kase, target, timeout, settle) {
  return new Promise((resolve) => {
    let opened = false;
    const ws = new WebSocket(`ws://127.0.0.1:${target.wsPort}/mqtt`, ['mqtt'], { perMessageDeflate: false, handshakeTimeout: timeout });
    let first = true;
    const io = {
      write: (ch) =>
        new Promise((ok) => {
          if (ws.readyState !== WebSocket.OPEN) return ok(false);
          const binary = !(first && kase.text);
          first = false;
          ws.send(ch.bytes, { binary, fin: ch.fin !== false, compress: false }, (err) => ok(!err));
        }),
      destroy: () => ws.terminate(),
    };
    const d = driver(kase, timeout, settle, io, resolve);
    ws.on('open', () => {
      opened = true;
      d.opened();
    });
    ws.on('message', (data) => d.data(data.length));
    ws.on('unexpected-response', (_req, res) => d.failedToOpen(`upgrade answered HTTP ${res.statusCode}`));
    ws.on('error', (err) => (opened ? d.noteError(err.code ?? err.message) : d.failedToOpen(err.code ?? err.message)));
    ws.on('close', () => opened && d.closed());
  });
}
