/**
 * The typed gate contract (GateService): one codec per verb, the client stub and the server
 * adapter, over a real InProcessTransport; and the error-code table of docs/reference/error-codes.md against
 * the sources.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  ERROR_CODES,
  GATE_VERBS,
  InProcessTransport,
  RpcError,
  gateClient,
  makeSessionData,
  serveGateService,
  type GateService,
  type RpcValue,
  type SessionData,
} from '@mqgate/rpc';

const ROOT = join(__dirname, '..', '..', '..');

/** A GateService over a map, recording the typed arguments each verb received. */
function memoryGate(): { service: GateService; seen: Array<[string, unknown[]]> } {
  const seen: Array<[string, unknown[]]> = [];
  const data = makeSessionData({ sessionId: 's1', serverId: 'gate@t', settings: { a: '1' } });
  const rec =
    <T>(verb: string, result: T) =>
    async (...args: unknown[]): Promise<T> => {
      seen.push([verb, args]);
      return result;
    };
  const service: GateService = {
    update: rec('update', data),
    bind: rec('bind', data),
    unbind: rec('unbind', data),
    push: rec('push', data),
    set: rec('set', data),
    remove: rec('remove', data),
    send: rec('send', undefined),
    sendBatch: rec('sendBatch', 2),
    broadcast: rec('broadcast', 3),
    isConnect: rec('isConnect', true),
    close: rec('close', undefined),
    counts: rec('counts', { total: 2, bound: 1, guests: 1 }),
    handOver: rec('handOver', {
      userId: 'u1',
      traceId: 't1',
      settings: { a: '1' },
      lost: 2,
      tokenHash: Buffer.from([1, 2]),
      pushes: [
        { topic: 'p/1', body: Buffer.from('x') },
        { topic: 'p/2', body: Buffer.from('y'), properties: { contentType: 'text/plain' } },
      ],
    }),
  };
  return { service, seen };
}

let transport: InProcessTransport;
let wire: Array<[string, RpcValue[]]>;
let seen: Array<[string, unknown[]]>;

beforeEach(async () => {
  transport = new InProcessTransport();
  const gate = memoryGate();
  seen = gate.seen;
  wire = [];
  const handler = serveGateService(gate.service);
  await transport.serve({ serverId: 'gate@t', moduleType: 'gate' }, (fn, args, ctx) => {
    wire.push([fn, args]);
    return handler(fn, args, ctx);
  });
});

afterEach(() => transport.close());

describe('gateClient → wire (mqant positional forms) → serveGateService', () => {
  const body = Buffer.from('hi');
  test.each<[string, (g: GateService) => Promise<unknown>, string, RpcValue[], unknown[], unknown]>([
    ['update', (g) => g.update('s1'), 'Update', ['s1'], ['s1'], 'session'],
    ['bind', (g) => g.bind('s1', 'u1'), 'Bind', ['s1', 'u1'], ['s1', 'u1'], 'session'],
    ['unbind', (g) => g.unbind('s1', true), 'UnBind', ['s1', true], ['s1', true], 'session'],
    ['push', (g) => g.push('s1', { k: 'v' }), 'Push', ['s1', { k: 'v' }], ['s1', { k: 'v' }], 'session'],
    ['set', (g) => g.set('s1', 'k', ''), 'Set', ['s1', 'k', ''], ['s1', 'k', ''], 'session'],
    ['remove one key travels as a string', (g) => g.remove('s1', ['k']), 'Remove', ['s1', 'k'], ['s1', ['k']], 'session'],
    ['remove several', (g) => g.remove('s1', ['a', 'b']), 'Remove', ['s1', ['a', 'b']], ['s1', ['a', 'b']], 'session'],
    ['send', (g) => g.send('s1', 'a/b', body), 'Send', ['s1', 'a/b', body], ['s1', 'a/b', body], undefined],
    ['sendBatch joins ids with commas', (g) => g.sendBatch(['s1', 's2'], 't', body), 'SendBatch', ['s1,s2', 't', body], [['s1', 's2'], 't', body], 2],
    ['broadcast', (g) => g.broadcast('t', body), 'BroadCast', ['t', body], ['t', body], 3],
    ['isConnect', (g) => g.isConnect('s1', 'u1'), 'IsConnect', ['s1', 'u1'], ['s1', 'u1'], true],
    ['close with a reason', (g) => g.close('s1', 'bye'), 'Close', ['s1', 'bye'], ['s1', 'bye'], undefined],
    ['close without a reason sends no second argument', (g) => g.close('s1'), 'Close', ['s1'], ['s1', undefined], undefined],
    ['counts', (g) => g.counts(), 'Counts', [], [], { total: 2, bound: 1, guests: 1 }],
    [
      'handOver travels as a list, bytes and pushes in order',
      (g) => g.handOver('s1', Buffer.from([1, 2])),
      'HandOver',
      ['s1', Buffer.from([1, 2])],
      ['s1', Buffer.from([1, 2])],
      {
        userId: 'u1',
        traceId: 't1',
        settings: { a: '1' },
        lost: 2,
        tokenHash: Buffer.from([1, 2]),
        pushes: [
          { topic: 'p/1', body: Buffer.from('x') },
          { topic: 'p/2', body: Buffer.from('y'), properties: { contentType: 'text/plain' } },
        ],
      },
    ],
  ])('%s', async (_name, run, fn, wireArgs, typedArgs, result) => {
    const out = await run(gateClient(transport, 'gate@t'));
    expect(wire).toEqual([[fn, wireArgs]]);
    expect(seen).toHaveLength(1);
    expect(seen[0][1]).toEqual(typedArgs);
    if (result === 'session') expect((out as SessionData).settings).toEqual({ a: '1' });
    else expect(out).toEqual(result);
  });

  test('sendNR is a fire-and-forget Send', async () => {
    await gateClient(transport, 'gate@t').sendNR('s1', 'a/b', body);
    await new Promise((r) => setImmediate(r));
    expect(wire).toEqual([['Send', ['s1', 'a/b', body]]]);
  });

  test('every verb has a codec whose wire name maps back to it', () => {
    const fns = Object.values(GATE_VERBS).map((c) => c.fn);
    expect(new Set(fns).size).toBe(fns.length);
    expect(Object.keys(GATE_VERBS).sort()).toEqual(Object.keys(memoryGate().service).sort());
  });
});

describe('the server adapter decodes what other callers send (mqant forms)', () => {
  const call = (fn: string, args: RpcValue[]) => transport.call({ serverId: 'gate@t' }, fn, args);

  test('SendBatch ids as a list, a body as a string or JSON', async () => {
    await call('SendBatch', [['s1', ' s2 '], 't', 'text']);
    await call('Send', ['s1', 't', { x: 1 }]);
    expect(seen[0][1]).toEqual([['s1', 's2'], 't', Buffer.from('text')]);
    expect(seen[1][1]).toEqual(['s1', 't', Buffer.from('{"x":1}')]);
  });

  test('UnBind without the delete flag is a plain unbind', async () => {
    await call('UnBind', ['s1']);
    expect(seen[0][1]).toEqual(['s1', false]);
  });

  test.each<[string, RpcValue[], RegExp]>([
    ['Bind', ['s1', 42], /^Bind: argument 1 \(userId\) must be a non-empty string$/],
    ['Bind', [7, 'u'], /^Bind: argument 0 \(sessionId\)/],
    ['Set', ['s1', 'k', 5], /^Set: argument 2 \(value\)/],
    ['Push', ['s1', { k: 1 }], /^Push: setting "k" must be a string/],
    ['Remove', ['s1', []], /^Remove: argument 1 \(key\)/],
    ['Send', ['s1', 'a/#', 'x'], /^Send: topic "a\/#" must not hold a wildcard/],
    ['Send', ['s1', 'a/b'], /^Send: argument 2 \(body\) is missing/],
    ['Close', ['s1', 3], /^Close: argument 1 \(reason\) must be a string/],
    ['UnBind', ['s1', 'yes'], /^UnBind: argument 1 \(delete\) must be a boolean/],
  ])('%s %j → BAD_ARGUMENT naming the verb and the argument; the service is not called', async (fn, args, message) => {
    const err = await call(fn, args).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect((err as Error).message).toMatch(message);
    expect(seen).toEqual([]);
  });

  test('an unknown function → NOT_FOUND', async () => {
    await expect(call('Frobnicate', [])).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('the client stub checks results', () => {
  test.each<[string, (g: GateService) => Promise<unknown>, RpcValue]>([
    ['update expects the session', (g) => g.update('s1'), 'nope'],
    ['sendBatch expects a number', (g) => g.sendBatch(['s1'], 't', Buffer.from('x')), 'two'],
    ['isConnect expects a boolean', (g) => g.isConnect('s1', 'u'), 1],
    ['counts expects {total, bound, guests}', (g) => g.counts(), { total: 1 }],
    ['counts expects a number of detached sessions when there is one', (g) => g.counts(), { total: 1, bound: 1, guests: 0, detached: 'x' }],
    ['handOver expects the list', (g) => g.handOver('s', Buffer.from([1])), { userId: 'u' }],
  ])('%s, else BAD_REPLY', async (_name, run, answer) => {
    await transport.serve({ serverId: 'gate@bad', moduleType: 'gate' }, () => answer);
    await expect(run(gateClient(transport, 'gate@bad'))).rejects.toMatchObject({ code: 'BAD_REPLY' });
  });

  test('counts of an older gate, without `detached`, are accepted', async () => {
    await transport.serve({ serverId: 'gate@old', moduleType: 'gate' }, () => ({ total: 3, bound: 2, guests: 1 }));
    expect(await gateClient(transport, 'gate@old').counts()).toEqual({ total: 3, bound: 2, guests: 1 });
  });

  test('HandOver without the token hash → BAD_ARGUMENT', async () => {
    await expect(transport.call({ serverId: 'gate@t' }, 'HandOver', ['s1', ''])).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  });

  test('a session answered as mqant SessionImp bytes is decoded', async () => {
    const { encodeSession } = await import('@mqgate/rpc');
    await transport.serve({ serverId: 'gate@bytes', moduleType: 'gate' }, () => encodeSession(makeSessionData({ userId: 'u9' })));
    expect((await gateClient(transport, 'gate@bytes').update('s')).userId).toBe('u9');
  });

  test('the timeout option bounds each call', async () => {
    await transport.serve({ serverId: 'gate@slow', moduleType: 'gate' }, () => new Promise(() => undefined));
    await expect(gateClient(transport, 'gate@slow', { timeout: 30 }).counts()).rejects.toMatchObject({ code: 'DEADLINE' });
  });
});

// ---------------------------------------------------------------- error codes

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('error codes', () => {
  test("docs/reference/error-codes.md's table lists exactly ERROR_CODES, with their meanings", () => {
    const page = readFileSync(join(ROOT, 'docs', 'reference', 'error-codes.md'), 'utf8');
    const table = /<!-- error-codes:begin -->([\s\S]*?)<!-- error-codes:end -->/.exec(page);
    expect(table).not.toBeNull();
    const rows = [...(table as RegExpExecArray)[1].matchAll(/^\| `([A-Z_]+)` \| (.*) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual(Object.entries(ERROR_CODES));
  });

  test('every code the sources throw or compare with is in ERROR_CODES', () => {
    const used = new Set<string>();
    const packages = join(ROOT, 'packages');
    for (const pkg of readdirSync(packages)) {
      const src = join(packages, pkg, 'src');
      if (!statSync(join(packages, pkg)).isDirectory() || !exists(src)) continue;
      for (const file of sourceFiles(src)) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/(?:RpcError|super)\([^;]*?,\s*'([A-Z][A-Z_]{2,})'\s*\)/g)) used.add(m[1]);
        for (const m of text.matchAll(/code(?: ===? |: )'([A-Z][A-Z_]{2,})'/g)) used.add(m[1]);
      }
    }
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((c) => !(c in ERROR_CODES))).toEqual([]);
  });
});

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}
