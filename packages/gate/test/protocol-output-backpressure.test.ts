/**
 * A client that sends but does not read (issue: hold up on the open internet, finding 1): a
 * PINGREQ flood from a non-reading client made the gate queue millions of 2-byte PINGRESPs
 * (RSS 72 → 307 MB) and stalled everyone else. Now the gate stops reading such a client once
 * its unsent output passes outputHighWaterMark (its further input waits in the kernel), coalesces
 * the control answers of a read batch into one write, and closes the client only after
 * slowConsumerTimeout. These first tests turn the input rates (messageRate, byteRate) off: they
 * would slow the flooder long before its output backs up, and this is the defence for a client
 * that stays within its rates but never reads.
 *
 * The proof, with the default input rates, for TCP and WebSocket: during a
 * PINGREQ flood from one non-reading client the process's RSS grows by less than 20 MB, and a
 * second client's PINGRESP p99 stays under the bound during and after it.
 */
import { once } from 'node:events';
import { connect as netConnect, Socket as NetSocket, type Socket } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import { startGate, RawClient, type Harness } from './helpers/harness';
import type { RawPeer } from './helpers/raw-peer';
import { within } from './helpers/waiters';

const CONNECT = (clientId: string) =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0 });
/** 32 768 PINGREQs in one buffer. */
const PINGS = Buffer.alloc(64 * 1024, Buffer.from([0xc0, 0x00]));
const SLOW_TIMEOUT = 3000;

let h: Harness;
beforeAll(async () => {
  h = await startGate({ slowConsumerTimeout: SLOW_TIMEOUT, maxBufferedBytes: 4 * 1024 * 1024, messageRate: false, byteRate: false });
});
afterAll(() => h.stop());

/**
 * Writes PINGREQs until the socket stays backed up (the gate stopped reading it and the kernel
 * buffers are full) or `limit` bytes were written. Resolves with the bytes written.
 */
async function flood(write: (b: Buffer) => boolean, drained: () => Promise<unknown>, limit: number): Promise<number> {
  let written = 0;
  while (written < limit) {
    written += PINGS.length;
    if (!write(PINGS)) {
      const drainedInTime = await Promise.race([drained().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
      if (!drainedInTime) return written; // backed up: the gate is not reading
    }
  }
  return written;
}

function external(): number {
  const m = process.memoryUsage();
  return m.external + m.arrayBuffers;
}

test('TCP: the gate stops reading a PINGREQ flooder that does not read, serves others meanwhile, and closes it after slowConsumerTimeout', async () => {
  const other = await RawClient.open(h.tcpPort);
  await other.connect({ clientId: 'other-tcp' });
  const s: Socket = netConnect(h.tcpPort, '127.0.0.1');
  await once(s, 'connect');
  s.write(CONNECT('flooder-tcp'));
  const connected = await within(once(s, 'data'), 2000, 'CONNACK');
  expect((connected[0] as Buffer)[0]).toBe(0x20);
  s.pause(); // never reads again
  s.on('error', () => undefined); // the gate resets it in the end
  let closed = false;
  const closedReason = new Promise<string>((resolve) =>
    h.gate.on('disconnect', (session, reason) => {
      if (session.sessionId && reason.includes('slow consumer')) {
        closed = true;
        resolve(reason);
      }
    }),
  );
  const before = external();
  // 24 MiB of PINGREQs, more than the kernel buffers on both sides hold, written as fast as
  // the gate takes them, until the gate closes the flooder.
  let written = 0;
  let servedDuringFlood = false;
  const serveOther = async (): Promise<void> => {
    // Everyone else is served meanwhile.
    other.send({ cmd: 'pingreq' });
    await within(other.next('pingresp'), 2000, 'PINGRESP of a well-behaved client during the flood');
    servedDuringFlood = true;
  };
  while (written < 24 * 1024 * 1024 && !closed) {
    written += PINGS.length;
    if (!s.write(PINGS)) {
      const drainedOrClosed = Promise.race([once(s, 'drain'), closedReason]);
      // No drain for 500 ms: the gate has stopped reading the flooder (how many bytes the
      // kernel buffers take before that varies from run to run).
      const stuck = await Promise.race([drainedOrClosed.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 500))]);
      if (stuck && !servedDuringFlood) await serveOther();
      await drainedOrClosed;
    }
    if (!servedDuringFlood && written > 8 * 1024 * 1024) await serveOther();
  }
  // It is closed because it did not read for slowConsumerTimeout, not at maxBufferedBytes (4 MiB
  // of queued PINGRESPs, before the fix): the gate stopped reading it instead of buffering.
  expect(await within(closedReason, SLOW_TIMEOUT + 5000, 'slow consumer close')).toMatch(/slowConsumerTimeout 3000 ms/);
  expect(servedDuringFlood).toBe(true);
  // What the gate held for it stayed small: its answers waited in the kernel buffers.
  expect(external() - before).toBeLessThan(20 * 1024 * 1024);
  s.destroy();
  other.destroy();
});

test('TCP: the PINGRESPs of one read batch leave in one write, and every PINGREQ gets its PINGRESP', async () => {
  const s: Socket = netConnect(h.tcpPort, '127.0.0.1');
  await once(s, 'connect');
  s.write(CONNECT('batch'));
  await once(s, 'data');
  let got = 0;
  const all = new Promise<void>((resolve) =>
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= 2 * 500) resolve();
    }),
  );
  s.write(PINGS.subarray(0, 2 * 500)); // 500 PINGREQs in one write
  await within(all, 2000, '500 PINGRESPs');
  expect(got).toBe(1000);
  s.destroy();
});

test('TCP: the PUBACKs of one read and the in-process replies of those requests leave in one write, acks first', async () => {
  await h.serve('batch', async (_fn, args) => ({ echoed: (args[1] as { n: number }).n }));
  const s: Socket = netConnect(h.tcpPort, '127.0.0.1');
  await once(s, 'connect');
  s.write(CONNECT('acks-and-replies'));
  await once(s, 'data');
  const chunks: Buffer[] = [];
  const parser = mqttPacket.parser();
  const packets: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => packets.push(p));
  const all = new Promise<void>((resolve) =>
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      parser.parse(d);
      if (packets.length >= 20) resolve();
    }),
  );
  const requests = Array.from({ length: 10 }, (_, i) =>
    mqttPacket.generate({
      cmd: 'publish',
      topic: `batch/HD_x/${i}`,
      payload: Buffer.from(`{"n":${i}}`),
      qos: 1,
      messageId: i + 1,
      dup: false,
      retain: false,
    }),
  );
  // Counts the gate's flushes to this client's socket (Socket#_writev / _write, one syscall each).
  const flushes: number[] = [];
  const proto = NetSocket.prototype as unknown as Record<'_writev' | '_write', (this: Socket, ...a: unknown[]) => unknown>;
  const { _writev: writev, _write: write } = proto;
  const mine = (sock: Socket) => sock.remotePort === s.localPort && sock.localPort === h.tcpPort;
  proto._writev = function (this: Socket, ...a: unknown[]) {
    if (mine(this)) flushes.push((a[0] as unknown[]).length);
    return writev.apply(this, a);
  };
  proto._write = function (this: Socket, ...a: unknown[]) {
    if (mine(this)) flushes.push(1);
    return write.apply(this, a);
  };
  try {
    s.write(Buffer.concat(requests)); // 10 QoS 1 requests in one read
    await within(all, 2000, '10 PUBACKs and 10 replies');
  } finally {
    proto._writev = writev;
    proto._write = write;
  }
  // One writev for the read's acks and the replies its requests resolved to in the same turn
  // (they were two syscalls: the acks' uncork ran before the requests' promises).
  expect(flushes).toEqual([11]); // the acks' one buffer, then 10 replies
  expect(chunks.length).toBeGreaterThan(0);
  expect(packets.slice(0, 10).map((p) => p.cmd)).toEqual(Array(10).fill('puback'));
  expect(packets.slice(10).map((p) => (p as mqttPacket.IPublishPacket).topic)).toEqual(requests.map((_, i) => `batch/HD_x/${i}`));
  s.destroy();
});

test('TCP: a QoS 1 PUBLISH and a DISCONNECT in one write: the PUBACK still goes out before the close', async () => {
  const s: Socket = netConnect(h.tcpPort, '127.0.0.1');
  await once(s, 'connect');
  s.write(CONNECT('ack-then-bye'));
  await once(s, 'data');
  const received: Buffer[] = [];
  s.on('data', (d: Buffer) => received.push(d));
  const publish = mqttPacket.generate({
    cmd: 'publish',
    topic: 'x/HD_y',
    payload: Buffer.from('{}'),
    qos: 1,
    messageId: 7,
    dup: false,
    retain: false,
  });
  s.write(Buffer.concat([publish, mqttPacket.generate({ cmd: 'disconnect' })]));
  await within(once(s, 'close'), 3000, 'close after DISCONNECT');
  expect(Buffer.concat(received).subarray(0, 4).toString('hex')).toBe('40020007'); // PUBACK for id 7
});

test('WebSocket: the same flood over WebSocket is stopped too, and others are served', async () => {
  const other = await RawClient.open(h.tcpPort);
  await other.connect({ clientId: 'other-ws' });
  const ws = new WebSocket(`ws://127.0.0.1:${h.wsPort}/mqtt`, ['mqtt'], { perMessageDeflate: false });
  await once(ws, 'open');
  ws.send(CONNECT('flooder-ws'));
  await once(ws, 'message');
  ws.pause(); // never reads again
  ws.on('error', () => undefined);
  const raw = (ws as unknown as { _socket: Socket })._socket;
  const written = await flood(
    (b) => {
      ws.send(b);
      return raw.writableLength < 1024 * 1024;
    },
    () => once(raw, 'drain'),
    64 * 1024 * 1024,
  );
  expect(written).toBeLessThan(64 * 1024 * 1024);
  other.send({ cmd: 'pingreq' });
  await within(other.next('pingresp'), 2000, 'PINGRESP of a well-behaved client during the flood');
  ws.terminate();
  other.destroy();
});

describe('the proof: a PINGREQ flood from one non-reading client, with the default input rates', () => {
  /** The bounds: RSS growth of the (gate's) process, and a second client's PINGRESP p99 during and after the flood. */
  const RSS_GROWTH = 20 * 1024 * 1024;
  const P99_MS = 50;
  /** How long the flood goes on once the flooder's socket is backed up, ms. */
  const FLOOD_MS = 2000;
  let d: Harness;
  beforeAll(async () => {
    d = await startGate();
  });
  afterAll(() => d.stop());

  /** A well-behaved client's pace: one PINGREQ per 5 ms at most (200/s, within its own messageRate of 1000/s). */
  const PACE_MS = 5;
  const paced = (t0: number) => new Promise((r) => setTimeout(r, Math.max(0, PACE_MS - (performance.now() - t0))));

  /**
   * A well-behaved client's PINGREQ / PINGRESP round trips, one after another at PACE_MS, until
   * stopped: their times (ms), and the largest RSS of the process seen at any of them.
   */
  function pinger(peer: RawPeer): { stop(): Promise<number[]>; maxRss(): number } {
    const times: number[] = [];
    let running = true;
    let maxRss = process.memoryUsage.rss();
    const loop = (async () => {
      while (running) {
        const t0 = performance.now();
        peer.send({ cmd: 'pingreq' });
        await within(peer.next('pingresp'), 5000, 'PINGRESP of a well-behaved client');
        times.push(performance.now() - t0);
        maxRss = Math.max(maxRss, process.memoryUsage.rss());
        await paced(t0);
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return times;
      },
      maxRss: () => maxRss,
    };
  }

  function p99(times: number[]): number {
    const sorted = [...times].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))];
  }

  /** 300 round trips, one after another at PACE_MS: their p99 (ms). */
  async function p99Now(peer: RawPeer): Promise<number> {
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      peer.send({ cmd: 'pingreq' });
      await within(peer.next('pingresp'), 5000, 'PINGRESP after the flood');
      times.push(performance.now() - t0);
      await paced(t0);
    }
    return p99(times);
  }

  /** Floods until the socket is backed up, then keeps it full for FLOOD_MS (writes that the kernel takes). */
  async function floodFor(write: (b: Buffer) => boolean, drained: () => Promise<unknown>): Promise<number> {
    let written = await flood(write, drained, 256 * 1024 * 1024);
    const end = Date.now() + FLOOD_MS;
    while (Date.now() < end) written += await flood(write, drained, PINGS.length);
    return written;
  }

  test('TCP: RSS grows by less than 20 MB and a second client PINGRESP p99 stays under the bound during and after', async () => {
    const other = await RawClient.open(d.tcpPort);
    await other.connect({ clientId: 'proof-other-tcp' });
    const s: Socket = netConnect(d.tcpPort, '127.0.0.1');
    await once(s, 'connect');
    s.write(CONNECT('proof-flooder-tcp'));
    expect(((await within(once(s, 'data'), 2000, 'CONNACK'))[0] as Buffer)[0]).toBe(0x20);
    s.pause(); // never reads again
    s.on('error', () => undefined);
    const rssBefore = process.memoryUsage.rss();
    const during = pinger(other);
    const written = await floodFor(
      (b) => s.write(b),
      () => once(s, 'drain'),
    );
    const times = await during.stop();
    expect(written).toBeGreaterThan(PINGS.length); // it did flood
    expect(times.length).toBeGreaterThan(10);
    expect(during.maxRss() - rssBefore).toBeLessThan(RSS_GROWTH);
    expect(p99(times)).toBeLessThan(P99_MS);
    s.destroy();
    expect(await p99Now(other)).toBeLessThan(P99_MS);
    other.destroy();
  });

  test('WebSocket: the same over WebSocket', async () => {
    const other = await RawClient.open(d.tcpPort);
    await other.connect({ clientId: 'proof-other-ws' });
    const ws = new WebSocket(`ws://127.0.0.1:${d.wsPort}/mqtt`, ['mqtt'], { perMessageDeflate: false });
    await once(ws, 'open');
    ws.send(CONNECT('proof-flooder-ws'));
    await within(once(ws, 'message'), 2000, 'CONNACK');
    ws.pause(); // never reads again
    ws.on('error', () => undefined);
    const raw = (ws as unknown as { _socket: Socket })._socket;
    const rssBefore = process.memoryUsage.rss();
    const during = pinger(other);
    const written = await floodFor(
      (b) => {
        ws.send(b);
        return raw.writableLength < 1024 * 1024;
      },
      () => once(raw, 'drain'),
    );
    const times = await during.stop();
    expect(written).toBeGreaterThan(PINGS.length);
    expect(times.length).toBeGreaterThan(10);
    expect(during.maxRss() - rssBefore).toBeLessThan(RSS_GROWTH);
    expect(p99(times)).toBeLessThan(P99_MS);
    ws.terminate();
    expect(await p99Now(other)).toBeLessThan(P99_MS);
    other.destroy();
  });
});
