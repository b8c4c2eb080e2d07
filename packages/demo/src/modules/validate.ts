/** Reads a required string field of a JSON request body; throws a clear error otherwise. */
export function requireString(payload: unknown, field: string, allowEmpty = false): string {
  if (payload === null || typeof payload !== 'object' || Buffer.isBuffer(payload)) {
    throw new Error(`the request body must be a JSON object with a string field "${field}"`);
  }
  const value = (payload as Record<string, unknown>)[field];
  if (typeof value !== 'string') throw new Error(`"${field}" must be a string, got ${value === undefined ? 'nothing' : typeof value}`);
  if (!allowEmpty && value === '') throw new Error(`"${field}" must not be empty`);
  return value;
}
