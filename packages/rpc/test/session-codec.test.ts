import { decodeSession, encodeSession, isSessionData, makeSessionData } from '@mqgate/rpc';

// proto3 wire format by hand: a key is (field number << 3 | wire type) as a varint;
// strings, and map entries (nested messages with key = 1, value = 2), use wire type 2
// (length-delimited). Every length and key below is under 128, so each is a single byte.
const LEN = 2;
function key(field: number, wireType: number): number[] {
  return [(field << 3) | wireType];
}
function str(field: number, value: string): number[] {
  const bytes = [...Buffer.from(value, 'utf8')];
  return [...key(field, LEN), bytes.length, ...bytes];
}
function mapEntry(field: number, k: string, v: string): number[] {
  const entry = [...str(1, k), ...str(2, v)];
  return [...key(field, LEN), entry.length, ...entry];
}

describe('session codec', () => {
  it('round-trips every field', () => {
    const s = makeSessionData({
      ip: '203.0.113.7',
      network: 'websocket',
      userId: 'u-42',
      sessionId: '3f9c01ab77aa0000',
      serverId: 'gate@1',
      traceId: 't-1',
      spanId: 's-1',
      settings: { room: 'r1', 'User-Agent': 'Mozilla/5.0', emoji: '✓' },
      topic: 'chat/HD_say/7',
    });
    const back = decodeSession(encodeSession(s));
    expect(back).toEqual(s);
    expect(isSessionData(back)).toBe(true);
  });

  it('produces the same bytes as mqant (Go proto3) for a small SessionImp, and decodes them', () => {
    const expected = Uint8Array.from([
      ...str(1, '10.0.0.1'), // IP:        0a 08 "10.0.0.1"
      ...str(3, 'u1'), //       UserId:    1a 02 "u1"
      ...mapEntry(8, 'a', '1'), // Settings: 42 06 0a 01 "a" 12 01 "1"
      ...mapEntry(8, 'lang', 'en'),
    ]);
    expect(Buffer.from(expected.subarray(0, 4)).toString('hex')).toBe('0a083130'); // the helpers themselves
    const s = makeSessionData({ ip: '10.0.0.1', userId: 'u1', settings: { a: '1', lang: 'en' } });
    // Go's proto.Marshal leaves empty proto3 strings out entirely.
    expect(Buffer.from(encodeSession(s)).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
    expect(decodeSession(expected)).toEqual(s);
    expect(decodeSession(Buffer.from(expected))).toEqual(s);
  });

  it('decodes the Topic field (10) and skips Carrier (9), which mqant declares but never uses', () => {
    const bytes = Uint8Array.from([...str(4, 'sid'), ...mapEntry(9, 'uber-trace-id', 'x'), ...str(10, 'user/HD_login')]);
    expect(key(10, LEN)).toEqual([0x52]);
    const s = decodeSession(bytes);
    expect([s.sessionId, s.topic, s.settings]).toEqual(['sid', 'user/HD_login', {}]);
  });

  it('keeps Carrier (9) and fields it does not know through a decode and an encode: the bytes come back the same', () => {
    // A Go mqant session with a Carrier, plus a varint field 20 from a newer peer: key 20 << 3 = 160 = a0 01, value 150 = 96 01.
    const bytes = Uint8Array.from([...str(4, 'sid'), ...mapEntry(9, 'uber-trace-id', 'x'), ...str(10, 't'), 0xa0, 0x01, 0x96, 0x01]);
    const s = decodeSession(bytes);
    expect(s.carrier).toEqual({ 'uber-trace-id': 'x' });
    expect(Buffer.from(s.unknownFields ?? []).toString('hex')).toBe('a0019601');
    expect(Buffer.from(encodeSession(s)).toString('hex')).toBe(Buffer.from(bytes).toString('hex'));
    // and a session without either encodes as before: no Carrier, nothing appended
    expect(decodeSession(encodeSession(makeSessionData({ sessionId: 'x' }))).carrier).toBeUndefined();
  });

  it("carries the protocol level (field 11) and the MQTT 5 request context (field 12), outside mqant's fields 1..10", () => {
    const s = makeSessionData({
      sessionId: 'sid',
      protocolVersion: 5,
      mqtt5: { userProperties: { lang: 'fr', k: ['1', '2'] }, contentType: 'application/json', correlationData: Buffer.from([0, 255]) },
    });
    const bytes = Buffer.from(encodeSession(s));
    expect(decodeSession(bytes)).toEqual(s);
    // Field 11 is a varint (key 0x58), field 12 a nested message (key 0x62): both unknown to mqant, which skips them.
    expect(bytes.includes(Buffer.from([0x58, 5]))).toBe(true);
    expect(bytes.includes(Buffer.from([0x62]))).toBe(true);
    // A session without them (level 0 = not said, no request context) encodes as before.
    expect(Buffer.from(encodeSession(makeSessionData({ sessionId: 'sid' }))).toString('hex')).toBe(Buffer.from(str(4, 'sid')).toString('hex'));
  });

  it('encodes an empty session as zero bytes', () => {
    expect(encodeSession(makeSessionData({}))).toHaveLength(0);
  });

  it.each([
    ['a length past the end', [0x0a, 0x09, 0x41]],
    ['an invalid wire type', [0x0f]],
    ['a truncated varint key', [0xff, 0xff]],
    ['a truncated map entry', [0x42, 0x05, 0x0a]],
  ])('throws on garbage: %s', (_what, bytes) => {
    expect(() => decodeSession(Uint8Array.from(bytes))).toThrow();
    expect(() => decodeSession(Buffer.from(bytes))).toThrow();
  });

  it('isSessionData tells sessions from look-alike JSON objects', () => {
    const plain = { ...makeSessionData({ userId: 'u' }) };
    expect(isSessionData(makeSessionData({}))).toBe(true);
    expect(isSessionData(plain)).toBe(false);
    expect(isSessionData(null)).toBe(false);
    expect(isSessionData('s')).toBe(false);
  });
});
