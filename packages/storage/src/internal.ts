import { StorageError } from './storage-handler';

/** Default time to live of a stored session: 86_400_000 ms (24 h). */
export const DEFAULT_SESSION_TTL = 86_400_000;

/** `value`, or a RangeError naming the option when it is not a positive safe integer. */
export function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer number of ms, got ${String(value)}`);
  }
  return value;
}

/** The user id, or a StorageError when it is empty (or not a string). */
export function checkUserId(operation: StorageError['operation'], userId: unknown): string {
  if (typeof userId !== 'string' || userId === '') {
    throw new StorageError(operation, typeof userId === 'string' ? userId : '', new Error('userId is empty (guest sessions are not stored)'));
  }
  return userId;
}
