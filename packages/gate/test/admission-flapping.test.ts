/**
 * Flapping detection under attack, on a real gate over real sockets (admission/flapping.ts):
 * - throw-away client ids that get themselves banned fill only the flapping ban table
 *   (maxFlappingBans), which evicts its oldest; operator bans (maxBans) keep working, a real
 *   flapper is still banned, the full table is warned about once, and no log line says
 *   "banned" of a client id that holds no ban;
 * - many CONNECTs of one client id at once are counted as they arrive, not when their
 *   authentication settles: at most maxCount are accepted.
 */
import type { Logger } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, type Harness } from './helpers/harness';
import { waitUntil } from './helpers/waiters';

const conns = new Connections();
let h: Harness | undefined;
afterEach(async () => {
  await conns.closeAll();
  await h?.stop();
  h = undefined;
});

interface Line {
  fields: Record<string, unknown>;
  msg: string;
}
function recordingLogger(warns: Line[]): Logger {
  const none = () => undefined;
  return {
    debug: none,
    info: none,
    error: none,
    warn: (fields: object, msg: string) => warns.push({ fields: fields as Record<string, unknown>, msg }),
  };
}

/** One CONNECT (3.1.1) of `clientId`: its CONNACK return code; the socket is closed after. */
async function connectOnce(port: number, clientId: string): Promise<number> {
  const c = await conns.raw(port);
  const ack = await c.connect({ clientId });
  c.destroy();
  await c.closed;
  return ack.returnCode as number;
}

test('throw-away flapping client ids fill only the flapping ban table: operator bans still work, a real flapper is banned, one warning', async () => {
  const warns: Line[] = [];
  h = await startGate({
    logger: recordingLogger(warns),
    flapping: { maxCount: 2, window: 60_000, banTime: 60_000 },
    maxBans: 4,
    maxFlappingBans: 4,
  });
  // The attack: 10 client ids, each reconnecting until it is banned (its 3rd CONNECT).
  for (let i = 0; i < 10; i++) {
    expect([await connectOnce(h.tcpPort, `junk-${i}`), await connectOnce(h.tcpPort, `junk-${i}`)]).toEqual([0, 0]);
    expect(await connectOnce(h.tcpPort, `junk-${i}`)).toBe(5);
  }
  // The flapping table holds the 4 newest; the operator's list is untouched.
  expect(h.gate.bans().map((b) => b.value)).toEqual(['junk-6', 'junk-7', 'junk-8', 'junk-9']);
  for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) await h.gate.ban({ ip }, 60_000);
  await h.gate.ban({ clientId: 'operator-banned' }, 60_000);
  await expect(h.gate.ban({ ip: '10.0.0.4' }, 60_000)).rejects.toThrow(/maxBans 4/);
  expect(await connectOnce(h.tcpPort, 'operator-banned')).toBe(5);
  // A real flapper, after the table is full: banned at its 3rd CONNECT, refused from then on.
  const flapper = [];
  for (let i = 0; i < 6; i++) flapper.push(await connectOnce(h.tcpPort, 'real-flapper'));
  expect(flapper).toEqual([0, 0, 5, 5, 5, 5]);
  expect(h.gate.bans().some((b) => b.kind === 'clientId' && b.value === 'real-flapper')).toBe(true);
  // More throw-away ids do not evict the operator's bans.
  for (let i = 10; i < 14; i++) for (let k = 0; k < 3; k++) await connectOnce(h.tcpPort, `junk-${i}`);
  expect(await connectOnce(h.tcpPort, 'operator-banned')).toBe(5);
  expect(h.gate.bans().filter((b) => b.kind === 'ip')).toHaveLength(3);
  // One warning that the table is full, however many evictions.
  expect(warns.filter((l) => l.fields.kind === 'flapping-bans-full')).toHaveLength(1);
  // The "banned" line (rate-limited: the first is written) names the first client id banned.
  const bannedLines = warns.filter((l) => l.fields.kind === 'limit:flapping');
  expect(bannedLines.map((l) => l.fields.clientId)).toEqual(['junk-0']);
  expect(bannedLines[0].msg).toMatch(/^client id banned for 60000 ms/);
});

test('a full flapping ban table evicts its oldest ban for the new one, never an operator ban', async () => {
  const warns: Line[] = [];
  h = await startGate({ logger: recordingLogger(warns), flapping: { maxCount: 1, window: 60_000, banTime: 60_000 }, maxBans: 1, maxFlappingBans: 1 });
  await h.gate.ban({ ip: '10.9.9.9' }, 60_000); // the operator's list is full
  expect([await connectOnce(h.tcpPort, 'f1'), await connectOnce(h.tcpPort, 'f1')]).toEqual([0, 5]);
  expect([await connectOnce(h.tcpPort, 'f2'), await connectOnce(h.tcpPort, 'f2')]).toEqual([0, 5]);
  // f2's ban evicted f1's: f1 is accepted again, f2 is refused; the operator's ban stays.
  expect(await connectOnce(h.tcpPort, 'f2')).toBe(5);
  expect(
    h.gate
      .bans()
      .map((b) => `${b.kind}:${b.value}`)
      .sort(),
  ).toEqual(['clientId:f2', 'ip:10.9.9.9']);
  const line = warns.find((l) => l.fields.kind === 'limit:flapping');
  expect(line?.fields.clientId).toBe('f1');
  expect(line?.msg).toMatch(/banned for 60000 ms/);
});

test('CONNECTs of one client id at once count as they arrive: with authentication still running, at most maxCount are accepted', async () => {
  const held: Array<() => void> = [];
  let hookCalls = 0;
  h = await startGate({
    flapping: { maxCount: 5, window: 60_000, banTime: 60_000 },
    authenticate: () => {
      hookCalls++;
      return new Promise<boolean>((resolve) => held.push(() => resolve(true)));
    },
  });
  const N = 40;
  const clients = await Promise.all(Array.from({ length: N }, () => conns.raw(h!.tcpPort)));
  const acks = clients.map((c) => c.connect({ clientId: 'same-id' }));
  const refusedEarly: number[] = [];
  for (const a of acks) void a.then((ack) => ack.returnCode !== 0 && refusedEarly.push(ack.returnCode as number));
  // Every CONNECT is either refused at arrival or waiting in the hook; then authentication settles.
  await waitUntil('every CONNECT reached the hook or was refused', () => hookCalls + refusedEarly.length === N, 10_000);
  for (const release of held) release();
  const codes = (await Promise.all(acks)).map((a) => a.returnCode as number);
  expect(codes.filter((c) => c === 0)).toHaveLength(5);
  expect(hookCalls).toBe(5);
  // Refused without a ban (3.1.1 return code 3, MQTT 5: 0x9F Connection rate exceeded).
  expect(codes.filter((c) => c === 3)).toHaveLength(N - 5);
  expect(h.gate.bans()).toEqual([]);
  // Once they are accepted, the next CONNECT is the one past maxCount: banned.
  expect(await connectOnce(h.tcpPort, 'same-id')).toBe(5);
  expect(h.gate.bans()).toEqual([{ kind: 'clientId', value: 'same-id', untilMs: expect.any(Number) }]);
});

test('a CONNECT counted at arrival and refused by authentication is given back: bad credentials at once never ban another client id', async () => {
  const held: Array<() => void> = [];
  h = await startGate({
    flapping: { maxCount: 3, window: 60_000, banTime: 60_000 },
    authenticate: ({ password }) => new Promise<boolean>((resolve) => held.push(() => resolve(password?.toString() === 'right'))),
  });
  const clients = await Promise.all(Array.from({ length: 3 }, () => conns.raw(h!.tcpPort)));
  const acks = clients.map((c) => c.connect({ clientId: 'victim', username: 'u', password: Buffer.from('wrong') }));
  await waitUntil('3 CONNECTs in the hook', () => held.length === 3);
  for (const release of held.splice(0)) release();
  expect((await Promise.all(acks)).map((a) => a.returnCode)).toEqual([5, 5, 5]);
  const real = await conns.raw(h.tcpPort);
  const ack = real.connect({ clientId: 'victim', username: 'u', password: Buffer.from('right') });
  await waitUntil('in the hook', () => held.length === 1);
  held[0]();
  expect((await ack).returnCode).toBe(0);
  expect(h.gate.bans()).toEqual([]);
});
