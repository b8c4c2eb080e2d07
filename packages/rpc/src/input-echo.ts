/**
 * How much of a client-sent value an error text may repeat: its first {@link INPUT_ECHO_CHARS}
 * characters. An error reply that echoed its whole input would give back whatever a client
 * sent (a 60 000-byte user id, a 64 KiB topic level), costing the gate the bytes twice and
 * making every error path an amplifier.
 */
export const INPUT_ECHO_CHARS = 40;

/** The first `max` characters of `value` (a surrogate pair is not split), or undefined when it is no longer than that. */
function prefixOf(value: string, max: number): string | undefined {
  if (value.length <= max) return undefined;
  const last = value.charCodeAt(max - 1);
  return value.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/**
 * A client-sent value as an error text may show it: unchanged up to {@link INPUT_ECHO_CHARS}
 * characters, else its first INPUT_ECHO_CHARS followed by `…(N chars)`, N its full length.
 */
export function clipInput(value: string, max = INPUT_ECHO_CHARS): string {
  const prefix = prefixOf(value, max);
  return prefix === undefined ? value : `${prefix}…(${value.length} chars)`;
}

/** {@link clipInput} in JSON quotes, as error texts quote a key, topic or id: `"abc"`, or `"abcd"…(60000 chars)` when cut. */
export function quoteInput(value: string, max = INPUT_ECHO_CHARS): string {
  const prefix = prefixOf(value, max);
  return prefix === undefined ? JSON.stringify(value) : `${JSON.stringify(prefix)}…(${value.length} chars)`;
}
