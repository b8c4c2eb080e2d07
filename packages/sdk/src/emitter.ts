/** A minimal event emitter with no Node import, so the browser build needs no polyfill. */
export class Emitter {
  private readonly handlers = new Map<string, Set<(...args: never[]) => unknown>>();

  protected addListener(event: string, fn: (...args: never[]) => unknown): void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(fn);
  }

  protected removeListener(event: string, fn: (...args: never[]) => unknown): void {
    this.handlers.get(event)?.delete(fn);
  }

  protected listenerCount(event: string): number {
    return this.handlers.get(event)?.size ?? 0;
  }

  /**
   * Calls each listener of `event`. A listener that throws does not stop the others: the
   * error goes to the `error` listeners (to `console.error` when there are none).
   */
  protected emit(event: string, ...args: unknown[]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (...a: unknown[]) => unknown)(...args);
      } catch (err) {
        this.report(err, event);
      }
    }
  }

  protected report(err: unknown, where: string): void {
    if (where !== 'error' && this.listenerCount('error') > 0) this.emit('error', err);
    else console.error(`@mqgate/sdk: a listener of ${where} threw`, err);
  }
}
