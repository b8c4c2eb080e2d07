/**
 * Defaults and validation of the options this round added that other suites exercise only in
 * behaviour: each has its documented default, turns off where it says it does, and a bad value
 * is a RangeError naming it (from resolveOptions, so from the Gate constructor).
 */
import { getHeapStatistics } from 'node:v8';
import { DEFAULTS, resolveOptions } from '@mqgate/gate';
import { OptionError } from '@mqgate/rpc';

test('maxBufferedBytesTotal: a quarter of the heap limit by default; 0 and false turn it off; negative is a RangeError', () => {
  expect(DEFAULTS.maxBufferedBytesTotal).toBe(Math.floor(getHeapStatistics().heap_size_limit / 4));
  expect(resolveOptions({}).maxBufferedBytesTotal).toBe(DEFAULTS.maxBufferedBytesTotal);
  expect(resolveOptions({ maxBufferedBytesTotal: false }).maxBufferedBytesTotal).toBe(0);
  expect(resolveOptions({ maxBufferedBytesTotal: 0 }).maxBufferedBytesTotal).toBe(0);
  expect(() => resolveOptions({ maxBufferedBytesTotal: -1 })).toThrow(/maxBufferedBytesTotal/);
});

test('maxDetachedBytesTotal: an eighth of the heap limit by default; 0 and false turn it off; negative is a RangeError', () => {
  expect(DEFAULTS.maxDetachedBytesTotal).toBe(Math.floor(getHeapStatistics().heap_size_limit / 8));
  expect(resolveOptions({}).maxDetachedBytesTotal).toBe(DEFAULTS.maxDetachedBytesTotal);
  expect(resolveOptions({ maxDetachedBytesTotal: false }).maxDetachedBytesTotal).toBe(0);
  expect(resolveOptions({ maxDetachedBytesTotal: 0 }).maxDetachedBytesTotal).toBe(0);
  expect(() => resolveOptions({ maxDetachedBytesTotal: -1 })).toThrow(/maxDetachedBytesTotal/);
});

test('maxFlappingBans: 10 000 by default, an integer of at least 1 (BAD_OPTION naming it otherwise)', () => {
  expect(resolveOptions({}).maxFlappingBans).toBe(10_000);
  expect(resolveOptions({ maxFlappingBans: 1 }).maxFlappingBans).toBe(1);
  expect(() => resolveOptions({ maxFlappingBans: 0 })).toThrow(/maxFlappingBans/);
  expect(() => resolveOptions({ maxFlappingBans: 1.5 })).toThrow(RangeError);
});

test('userIndexCheckInterval: 1000 ms by default, 0 = off, up to 2^31-1 ms', () => {
  expect(resolveOptions({}).userIndexCheckInterval).toBe(1000);
  expect(resolveOptions({ userIndexCheckInterval: 0 }).userIndexCheckInterval).toBe(0);
  expect(resolveOptions({ userIndexCheckInterval: 2_147_483_647 }).userIndexCheckInterval).toBe(2_147_483_647);
  expect(() => resolveOptions({ userIndexCheckInterval: 2_147_483_648 })).toThrow(/userIndexCheckInterval/);
  expect(() => resolveOptions({ userIndexCheckInterval: -1 })).toThrow(RangeError);
});

test.each([
  ['maxTrackedIps', 100_000],
  ['maxTrackedClientIds', 100_000],
  ['banSyncInterval', 5000],
] as const)('%s: %d by default; 0 or negative is a RangeError naming it', (name, def) => {
  expect(resolveOptions({})[name]).toBe(def);
  expect(resolveOptions({ [name]: 1 })[name]).toBe(1);
  expect(() => resolveOptions({ [name]: 0 })).toThrow(new RegExp(name));
  expect(() => resolveOptions({ [name]: -5 })).toThrow(RangeError);
});

test('an option out of its range is an OptionError: code BAD_OPTION, a RangeError, naming the option, rule and value', () => {
  let err: unknown;
  try {
    resolveOptions({ maxPacketSize: 0 });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(OptionError);
  expect(err).toBeInstanceOf(RangeError);
  expect(err).toMatchObject({ code: 'BAD_OPTION', message: 'gate option maxPacketSize must be a positive number, got 0' });
  expect(() => resolveOptions({ maxKeepalive: 65_536 })).toThrow('gate option maxKeepalive must be at most 65535, got 65536');
  expect(() => resolveOptions({ connectRate: { perSecond: 10, burst: 0.5 } })).toThrow(OptionError);
});
