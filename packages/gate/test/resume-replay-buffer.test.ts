/**
 * What a detached session's replay buffer drops is freed at once: a push dropped past
 * resumeBufferMessages / resumeBufferBytes, or evicted past maxDetachedBytesTotal, is no
 * longer referenced (its body's memory goes back at the next GC), and the bytes it held leave
 * the gate-wide count. The buffer used to keep dropped pushes referenced until it compacted.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ReplayBuffer } from '../src/resume/replay-buffer';
import { DetachedBytes } from '../src/resume/detached-bytes';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

test('a push dropped past resumeBufferMessages is garbage at once, not held until the buffer compacts', async () => {
  const buffer = new ReplayBuffer(2, 1 << 20);
  let first: Buffer | undefined = Buffer.alloc(64 * 1024, 1);
  const dropped = new WeakRef(first);
  buffer.push('t', first);
  first = undefined;
  for (let i = 0; i < 9; i++) buffer.push('t', Buffer.alloc(16));
  expect(buffer.length).toBe(2);
  expect(buffer.lost).toBe(8);
  await new Promise((r) => setImmediate(r)); // a WeakRef's target is kept until the job that made it ends
  gc();
  expect(dropped.deref()).toBeUndefined();
});

test('eviction past the pool limit takes the oldest first (carried ones first), counts them lost, and the pool follows', () => {
  const pool = new DetachedBytes(1000, () => 0);
  const b = new ReplayBuffer(100, 1 << 20, 0, pool);
  b.carry([{ topic: 'q', body: Buffer.alloc(100), qos: 1, messageId: 7 }]);
  b.push('t', Buffer.alloc(100));
  b.push('t', Buffer.alloc(100));
  expect(pool.total).toBe(3 * (100 + 1 + 64));
  expect(b.evictOldest(1)).toBe(1); // the carried QoS 1 push goes first
  expect(b.lost).toBe(1);
  expect(pool.total).toBe(2 * (100 + 1 + 64));
  expect(b.drain().map((p) => p.topic)).toEqual(['t', 't']);
  expect(pool.total).toBe(0);
});
