import { isSessionData, makeSessionData, type RpcValue } from '@mqgate/rpc';
import { decodeRequest, decodeResponse, EncodeError, encodeRequest, encodeResponse, RequestArgsError, toWireValue } from '@mqgate/rpc/internal';

function roundTrip(args: unknown[]): RpcValue[] {
  const bytes = encodeRequest({ id: 7, fn: 'f', args: args as RpcValue[], replyTo: 'r', deadline: 1_700_000_000_123, caller: 'c' });
  return decodeRequest(bytes).args;
}

describe('RedisTransport codec (proto/rpc.proto)', () => {
  it('round-trips the request envelope', () => {
    const bytes = encodeRequest({
      id: 4_000_000_000,
      fn: 'HD_login',
      args: [],
      replyTo: 'mqgate:rpc:reply:ab',
      deadline: 1_700_000_000_123,
      caller: 'h/1/ab',
    });
    expect(Buffer.isBuffer(bytes)).toBe(true);
    expect(decodeRequest(bytes)).toEqual({
      id: 4_000_000_000,
      fn: 'HD_login',
      args: [],
      replyTo: 'mqgate:rpc:reply:ab',
      deadline: 1_700_000_000_123,
      caller: 'h/1/ab',
    });
  });

  it('keeps the type of every value', () => {
    const session = makeSessionData({ userId: 'u1', sessionId: 's1', settings: { room: 'r' }, topic: 'chat/HD_say/1' });
    const values: unknown[] = [
      null,
      undefined,
      true,
      false,
      0,
      -1.5,
      2 ** 53,
      NaN,
      Infinity,
      '',
      'héllo ✓',
      Buffer.from([0, 255]),
      Uint8Array.from([1, 2]),
      session,
      { a: 1, b: [true, null], c: { d: 'x' } },
      [1, 'two', { three: 3 }],
      [],
    ];
    const back = roundTrip(values);
    expect(back.slice(0, 11)).toEqual([null, null, true, false, 0, -1.5, 2 ** 53, NaN, Infinity, '', 'héllo ✓']);
    expect(Buffer.isBuffer(back[11])).toBe(true);
    expect([...(back[11] as Buffer)]).toEqual([0, 255]);
    expect(Buffer.isBuffer(back[12])).toBe(true);
    expect([...(back[12] as Buffer)]).toEqual([1, 2]);
    expect(isSessionData(back[13])).toBe(true);
    expect(back[13]).toEqual(session);
    expect(back.slice(14)).toEqual([{ a: 1, b: [true, null], c: { d: 'x' } }, [1, 'two', { three: 3 }], []]);
  });

  it('sends plain arrays as JSON and arrays holding bytes or sessions as typed lists', () => {
    expect(toWireValue([1, { a: 2 }])).toEqual({ jsonValue: '[1,{"a":2}]' });
    const session = makeSessionData({ userId: 'u' });
    const nested = [1, [Buffer.from('x'), [session]], { k: 'v' }];
    expect(Object.keys(toWireValue(nested))).toEqual(['listValue']);
    const [back] = roundTrip([nested]) as [[number, [Buffer, [unknown]], object]];
    expect(back[0]).toBe(1);
    expect(Buffer.isBuffer(back[1][0])).toBe(true);
    expect(back[1][0].toString()).toBe('x');
    expect(isSessionData(back[1][1][0])).toBe(true);
    expect(back[2]).toEqual({ k: 'v' });
  });

  it('rejects what cannot be encoded, naming the argument', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => roundTrip(['ok', cyclic])).toThrow(EncodeError);
    expect(() => roundTrip(['ok', cyclic])).toThrow(/f: argument 1: cannot encode value as JSON/);
    expect(() => roundTrip([10n])).toThrow(/argument 0: cannot encode a value of type bigint/);
    expect(() => roundTrip([() => 1])).toThrow(/type function/);
  });

  it('round-trips responses: results, errors with codes, unencodable results', () => {
    const ok = decodeResponse(encodeResponse({ id: 3, result: { n: 1 } }));
    expect(ok).toEqual({ id: 3, result: { n: 1 } });
    expect(decodeResponse(encodeResponse({ id: 4, result: null }))).toEqual({ id: 4, result: null });
    expect(decodeResponse(encodeResponse({ id: 5, error: { code: 'NO_SESSION', message: 'gone' } }))).toEqual({
      id: 5,
      error: { code: 'NO_SESSION', message: 'gone' },
    });
    const bad = decodeResponse(encodeResponse({ id: 6, result: 5n as unknown as RpcValue }));
    expect(bad).toEqual({ id: 6, error: { code: 'ENCODE', message: 'result: cannot encode a value of type bigint' } });
  });

  it('reports a malformed argument with the envelope, so a server can still answer', () => {
    // Hand-made Request: fn "f" (field 2), one Value with json_value (field 7) "{", reply_to "r" (field 4).
    const value = [0x3a, 0x01, 0x7b];
    const bytes = Uint8Array.from([0x08, 0x09, 0x12, 0x01, 0x66, 0x1a, value.length, ...value, 0x22, 0x01, 0x72]);
    let caught: unknown;
    try {
      decodeRequest(bytes);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RequestArgsError);
    expect((caught as RequestArgsError).request).toMatchObject({ id: 9, fn: 'f', replyTo: 'r' });
    expect(() => decodeRequest(Uint8Array.from([0x0a, 0x09, 0x41]))).toThrow();
  });
});
