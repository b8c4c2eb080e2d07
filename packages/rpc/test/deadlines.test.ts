import { performance } from 'node:perf_hooks';
import { DeadlineSweep } from '../src/deadlines';

/** Resolves with the keys in the order they expired, once `n` have. */
function collect<K>(n: number): { sweep: DeadlineSweep<K>; done: Promise<{ key: K; at: number }[]> } {
  const seen: { key: K; at: number }[] = [];
  let resolve!: (v: { key: K; at: number }[]) => void;
  const done = new Promise<{ key: K; at: number }[]>((r) => (resolve = r));
  const sweep = new DeadlineSweep<K>((key) => {
    seen.push({ key, at: performance.now() });
    if (seen.length === n) resolve(seen);
  });
  return { sweep, done };
}

describe('DeadlineSweep (one timer for every pending call)', () => {
  it('expires each key no earlier than its timeout, earliest first, across timeouts added in any order', async () => {
    const { sweep, done } = collect<string>(4);
    const start = performance.now();
    sweep.add('late', 240);
    sweep.add('early', 60); // shorter than the armed one: the timer is re-armed earlier
    sweep.add('late2', 240);
    sweep.add('mid', 120);
    expect(sweep.size).toBe(4);
    const seen = await done;
    expect(seen.map((s) => s.key)).toEqual(['early', 'mid', 'late', 'late2']);
    const want: Record<string, number> = { early: 60, mid: 120, late: 240, late2: 240 };
    for (const s of seen) expect(s.at - start).toBeGreaterThanOrEqual(want[s.key] - 1);
    expect(sweep.size).toBe(0);
  });

  it('a deleted key never expires; the others still do', async () => {
    const { sweep, done } = collect<number>(2);
    sweep.add(1, 50);
    sweep.add(2, 50);
    sweep.add(3, 80);
    sweep.delete(2, 50);
    sweep.delete(2, 50); // twice: no-op
    sweep.delete(9, 50); // never added: no-op
    expect(sweep.size).toBe(2);
    expect((await done).map((s) => s.key)).toEqual([1, 3]);
  });

  it('holds no timer once nothing is pending (a process with no call is not kept alive)', () => {
    const sweep = new DeadlineSweep<number>(() => {
      throw new Error('must not expire');
    });
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    sweep.add(1, 10_000);
    sweep.add(2, 5_000);
    expect(timers()).toBe(before + 1);
    sweep.delete(1, 10_000);
    sweep.delete(2, 5_000);
    expect(timers()).toBe(before);
    expect(sweep.size).toBe(0);
  });
});
