/**
 * The message of an error, or the value as a string. Duck-typed rather than `instanceof
 * Error`, which is false for errors from another realm (e.g. Node's own errors seen from a
 * jest test's sandbox), whose String() would read "Error: …".
 */
export function messageOf(err: unknown): string {
  if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') {
    return (err as { message: string }).message;
  }
  return String(err);
}
