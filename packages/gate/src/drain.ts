/** Shortest pause between two batches of a drain, ms. */
export const MIN_BATCH_INTERVAL = 20;
/** Most batches a drain is cut into (a 10 s drain: one batch every 100 ms). */
export const MAX_BATCHES = 100;

/**
 * Closes `items` in batches spread evenly over `period` ms instead of all at once, so that
 * the clients of a draining gate do not all reconnect elsewhere in the same second (the
 * "self-DDoS" of a rolling deploy). The first batch goes at once; `close` is called once per
 * item. When `hurry` resolves (a second stop), the rest are closed at once.
 * @param period ms; 0 closes everything synchronously.
 * @returns once every item has been closed.
 */
export async function closeInBatches<T>(items: readonly T[], period: number, close: (item: T) => void, hurry: Promise<void>): Promise<void> {
  if (items.length === 0) return;
  const batches = period <= 0 ? 1 : Math.max(1, Math.min(MAX_BATCHES, items.length, Math.floor(period / MIN_BATCH_INTERVAL)));
  const interval = batches > 1 ? period / (batches - 1) : 0;
  const size = Math.ceil(items.length / batches);
  let hurried = false;
  void hurry.then(() => (hurried = true));
  const started = Date.now();
  for (let b = 0, i = 0; i < items.length; b++) {
    const end = hurried ? items.length : Math.min(items.length, i + size);
    for (; i < end; i++) close(items[i]);
    if (i >= items.length) break;
    // Batch b+1 is due at started + (b+1)·interval (no drift from slow batches).
    const wait = Math.max(0, started + (b + 1) * interval - Date.now());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([hurry, new Promise<void>((resolve) => (timer = setTimeout(resolve, wait)))]);
    clearTimeout(timer);
  }
}
