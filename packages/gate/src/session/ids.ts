import { randomFillSync } from 'node:crypto';

/** Random bytes drawn from the OS at a time (one `randomFillSync` per this many bytes of ids). */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let used = POOL_BYTES;

/**
 * `bytes` fresh random bytes (node's CSPRNG, each byte handed out once) as lowercase hex:
 * `2 × bytes` characters. Drawn from a pool refilled {@link POOL_BYTES} at a time, so a
 * CONNECT costs no `randomBytes` call of its own (two per session, sessionId and traceId,
 * were 6 % of the gate's CPU per CONNACK).
 * @param bytes 1..{@link POOL_BYTES}
 * @throws RangeError when `bytes` is not an integer in 1..{@link POOL_BYTES} (the pool could not hand it out fresh).
 */
export function randomHex(bytes: number): string {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > POOL_BYTES)
    throw new RangeError(`randomHex: bytes must be an integer in 1..${POOL_BYTES}, got ${bytes}`);
  if (used + bytes > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const hex = pool.toString('hex', used, used + bytes);
  used += bytes;
  return hex;
}
