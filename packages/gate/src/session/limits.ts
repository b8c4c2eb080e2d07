import { BadArgumentError, LimitError } from '@mqgate/rpc';
import { quoteInput } from '@mqgate/rpc/internal';

/**
 * What one session may hold: its user id and its settings. Every size is UTF-8 bytes; 0 turns
 * a limit off. Checked by the session service on Bind / Set / Push (a change past a limit
 * fails with code `LIMIT` and changes nothing), and applied to what a StorageHandler returns
 * on Query (keys past a limit are dropped, with a warning). mqant has no limits: a module (or
 * a client through it) could grow a session, and its stored copy, without bound.
 */
export interface SessionLimits {
  /** Longest user id. */
  maxUserIdBytes: number;
  /** Most settings keys per session. */
  maxSettings: number;
  /** Longest settings key. */
  maxSettingKeyBytes: number;
  /** Longest settings value. */
  maxSettingValueBytes: number;
  /** All keys and values of a session together. Keep it under maxPacketSize so a reply holding the settings fits in one packet. */
  maxSettingsBytes: number;
}

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Matches a lone UTF-16 surrogate (in `u` mode a valid pair is one code point, not Cs). */
const LONE_SURROGATE = /\p{Cs}/u;
const isWellFormed = (s: string): boolean => !LONE_SURROGATE.test(s);

/**
 * A user id, key or value must be well-formed Unicode: a lone UTF-16 surrogate would be
 * encoded as invalid UTF-8, which Go's protobuf (a Go mqant gate sharing the store) refuses.
 * @throws BadArgumentError (code BAD_ARGUMENT)
 */
function wellFormed(verb: string, what: string, s: string): void {
  if (!isWellFormed(s)) throw new BadArgumentError(verb, `${what} is not well-formed Unicode (it holds a lone surrogate)`);
}

function atMost(verb: string, what: string, n: number, limit: number, name: keyof SessionLimits): void {
  if (limit > 0 && n > limit) throw new LimitError(verb, `${what} is ${n} bytes, over ${name} ${limit}`);
}

/**
 * Checks a user id before Bind.
 * @throws BadArgumentError for ill-formed Unicode; LimitError (code LIMIT) past maxUserIdBytes.
 */
export function checkUserId(verb: string, userId: string, limits: SessionLimits): void {
  wellFormed(verb, 'userId', userId);
  atMost(verb, 'userId', bytes(userId), limits.maxUserIdBytes, 'maxUserIdBytes');
}

/**
 * Checks a settings map about to replace a session's: the keys in `changed` one by one,
 * then the map's count and size.
 * @throws BadArgumentError for ill-formed Unicode; LimitError (code LIMIT) past a limit.
 */
export function checkSettings(verb: string, next: Readonly<Record<string, string>>, changed: Iterable<string>, limits: SessionLimits): void {
  for (const key of changed) {
    if (!Object.hasOwn(next, key)) continue;
    const value = next[key];
    wellFormed(verb, `key ${quoteInput(key)}`, key);
    wellFormed(verb, `the value of ${quoteInput(key)}`, value);
    atMost(verb, `key ${quoteInput(key)}`, bytes(key), limits.maxSettingKeyBytes, 'maxSettingKeyBytes');
    atMost(verb, `the value of ${quoteInput(key)}`, bytes(value), limits.maxSettingValueBytes, 'maxSettingValueBytes');
  }
  const keys = Object.keys(next);
  if (limits.maxSettings > 0 && keys.length > limits.maxSettings) {
    throw new LimitError(verb, `the session would hold ${keys.length} settings, over maxSettings ${limits.maxSettings}`);
  }
  if (limits.maxSettingsBytes > 0) {
    let total = 0;
    for (const k of keys) total += bytes(k) + bytes(next[k]);
    atMost(verb, 'the settings together', total, limits.maxSettingsBytes, 'maxSettingsBytes');
  }
}

/**
 * What a StorageHandler returned, cut to the limits: keys that are ill-formed or too long,
 * and keys past maxSettings or maxSettingsBytes (in the stored order), are dropped.
 * `budget` is what the live settings already use, so the merge that follows stays within.
 * @returns the kept settings and the dropped keys (for a warning).
 */
export function limitStored(
  stored: Readonly<Record<string, string>>,
  live: Readonly<Record<string, string>>,
  limits: SessionLimits,
): { settings: Record<string, string>; dropped: string[] } {
  const settings = Object.create(null) as Record<string, string>;
  const dropped: string[] = [];
  let count = Object.keys(live).length;
  let total = 0;
  for (const k of Object.keys(live)) total += bytes(k) + bytes(live[k]);
  for (const key of Object.keys(stored)) {
    if (Object.hasOwn(live, key)) continue; // live keys win in the merge anyway
    const value = stored[key];
    const size = bytes(key) + bytes(value);
    const fits =
      isWellFormed(key) &&
      isWellFormed(value) &&
      (limits.maxSettingKeyBytes <= 0 || bytes(key) <= limits.maxSettingKeyBytes) &&
      (limits.maxSettingValueBytes <= 0 || bytes(value) <= limits.maxSettingValueBytes) &&
      (limits.maxSettings <= 0 || count + 1 <= limits.maxSettings) &&
      (limits.maxSettingsBytes <= 0 || total + size <= limits.maxSettingsBytes);
    if (!fits) {
      dropped.push(key);
      continue;
    }
    settings[key] = value;
    count++;
    total += size;
  }
  return { settings, dropped };
}
