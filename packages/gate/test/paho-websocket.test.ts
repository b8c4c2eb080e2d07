/**
 * MQTT over WebSocket with Eclipse Paho, clients nobody here wrote, as real child processes:
 * Paho Python 1.6 (python3-paho-mqtt) and the Paho C library 1.3 (libpaho-mqtt-dev, compiled
 * here with gcc) send one MQTT packet per WebSocket frame. At MQTT 5 an oversize PUBLISH gets
 * DISCONNECT 0x95 (Packet too large) whichever layer refuses it: the MQTT parser (a packet
 * over maxPacketSize in one frame) or the WebSocket message bound (a frame over what the
 * connection may take in at once, then close 1009). .ci/run installs both packages when missing.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startGate, type Harness } from './helpers/harness';

const run = promisify(execFile);
const clients = join(__dirname, 'clients');
/** The first python3 that has paho.mqtt (a pyenv python3 on PATH may not see Debian's packages). */
const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import paho.mqtt']).status === 0);
const dir = mkdtempSync(join(tmpdir(), 'mqgate-paho-'));
const pahoC = join(dir, 'paho_oversize');

let h: Harness;

beforeAll(async () => {
  h = await startGate(); // default limits: maxPacketSize 65 536, WebSocket message bound 2 MiB (byteRate burst)
  await run('gcc', ['-o', pahoC, join(clients, 'paho_oversize.c'), '-lpaho-mqtt3c', '-lpthread']);
}, 20_000);

afterAll(async () => {
  await h.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a client to its end; its JSON line. */
async function outcome(cmd: string, args: string[]): Promise<{ connack: number; disconnect: number | null }> {
  const { stdout } = await run(cmd, args, { timeout: 10_000 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
}

const SIZES = [
  ['70 000 bytes: over maxPacketSize, in one frame', 70_000],
  ['3 000 000 bytes: over the WebSocket message bound', 3_000_000],
] as const;

test('python3 with paho.mqtt is installed (apt-get install python3-paho-mqtt)', () => {
  expect(python).toBeDefined();
});

describe.each(SIZES)('an MQTT 5 PUBLISH of %s', (_what, size) => {
  test('Paho Python over WebSocket gets DISCONNECT 0x95', async () => {
    const got = await outcome(python ?? 'python3', [join(clients, 'paho_oversize.py'), String(h.wsPort), `svc/HD_none/py-${size}`, String(size)]);
    expect(got).toEqual({ connack: 0, disconnect: 0x95, rc: null });
  }, 15_000);

  test('the Paho C library over WebSocket gets DISCONNECT 0x95', async () => {
    const got = await outcome(pahoC, [`ws://127.0.0.1:${h.wsPort}/mqtt`, `svc/HD_none/c-${size}`, String(size)]);
    expect(got).toEqual({ connack: 0, disconnect: 0x95 });
  }, 15_000);
});
