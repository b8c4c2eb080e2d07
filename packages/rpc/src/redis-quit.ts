import type { Cluster, Redis } from 'ioredis';

/**
 * Closes an ioredis client without hanging during an outage: QUIT when it is ready (bounded
 * by `stepMs`; a timeout or failure falls back to disconnect), disconnect otherwise; then
 * waits at most `stepMs` for `end`. While reconnecting ioredis only cancels the next attempt
 * and emits nothing more, so it returns at once. Never rejects.
 * @param stepMs bound of each step, ms. Default 1 000.
 */
export async function quitRedis(client: Redis | Cluster, stepMs = 1_000): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'reconnecting' || client.status === 'wait') {
    client.disconnect();
    return;
  }
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const timeout = () => new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), stepMs)));
  if (client.status === 'ready') {
    const outcome = await Promise.race([client.quit().catch(() => 'failed' as const), timeout()]);
    clearTimeout(timer);
    if (outcome === 'timeout' || outcome === 'failed') client.disconnect();
  } else {
    client.disconnect();
  }
  await Promise.race([ended, timeout()]);
  clearTimeout(timer);
}
