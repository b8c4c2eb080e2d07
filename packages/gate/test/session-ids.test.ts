import { randomHex } from '../src/session/ids';

test('randomHex gives 2 hex characters per byte, never the same id twice across pool refills', () => {
  const seen = new Set<string>();
  // 16-byte ids past several 4 KiB pool refills (4096 / 16 = 256 per pool), and odd sizes that straddle one.
  for (let i = 0; i < 2000; i++) {
    const id = randomHex(16);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    seen.add(id);
  }
  expect(seen.size).toBe(2000);
  for (let i = 0; i < 600; i++) expect(randomHex(7)).toMatch(/^[0-9a-f]{14}$/);
  expect(randomHex(4096)).toMatch(/^[0-9a-f]{8192}$/);
});

test('randomHex refuses a size the pool cannot hand out fresh: 0, over 4096, not an integer', () => {
  for (const bad of [0, -1, 4097, 1.5, Number.NaN]) expect(() => randomHex(bad)).toThrow(RangeError);
  expect(randomHex(4096)).toMatch(/^[0-9a-f]{8192}$/);
});
