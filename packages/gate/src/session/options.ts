import { type DuplicateLoginPolicy, type UserIndex } from '@mqgate/rpc';
import { optionChecker, RANGES } from '@mqgate/rpc/internal';

/** Sessions: the user index, duplicate logins, and the bounds of user ids and settings. Part of GateOptions; defaults in {@link SESSION_DEFAULTS}. */
export interface SessionOptions {
  /**
   * Where users are connected across gates (RedisUserIndex for several processes). Default:
   * the app's (`AppContext.userIndex`, which every app has).
   */
  userIndex?: UserIndex;
  /**
   * What a second login of the same user does, enforced atomically across gates. Default
   * `{ policy: 'allow' }` (several sessions, no cap: mqant's behaviour).
   */
  duplicateLogin?: DuplicateLoginPolicy;
  /**
   * ms between two looks at the user index's epoch (`UserIndex.epoch`, RedisUserIndex: the
   * key `<prefix>user-index:epoch`); when it changed (Redis restarted empty, flushed), the
   * gate re-puts every bound session's entry, pipelined, so online, whisper and
   * duplicate-login policies are right again within one interval. 0: never looks. An
   * index without `epoch` is not looked at. Default 1 000.
   */
  userIndexCheckInterval?: number;
  /** Longest user id a Bind accepts, UTF-8 bytes; longer fails with code LIMIT. 0 = no limit. Default 256. */
  maxUserIdBytes?: number;
  /** Most settings keys a session holds; a change past it fails with code LIMIT. 0 = no limit. Default 256. */
  maxSettings?: number;
  /** Longest settings key, UTF-8 bytes. 0 = no limit. Default 256. */
  maxSettingKeyBytes?: number;
  /** Longest settings value, UTF-8 bytes. 0 = no limit. Default 16 384. */
  maxSettingValueBytes?: number;
  /**
   * All settings keys and values of a session together, UTF-8 bytes; also what is kept of a
   * stored session at Bind (keys past it are dropped with a warning). Kept under
   * maxPacketSize so a reply holding the settings fits one packet. 0 = no limit. Default 49 152.
   */
  maxSettingsBytes?: number;
}

/** {@link SessionOptions} resolved: every default applied, every value checked. */
export type ResolvedSessionOptions = Required<Omit<SessionOptions, 'userIndex'>> & {
  userIndex: UserIndex | undefined;
};

/** The defaults of {@link SessionOptions}. */
export const SESSION_DEFAULTS = {
  userIndexCheckInterval: 1000,
  maxUserIdBytes: 256,
  maxSettings: 256,
  maxSettingKeyBytes: 256,
  maxSettingValueBytes: 16_384,
  maxSettingsBytes: 49_152,
  duplicateLogin: { policy: 'allow' } as DuplicateLoginPolicy,
} as const;

const check = optionChecker('gate option');

/**
 * Fills in the defaults of {@link SessionOptions} and checks them.
 * @throws OptionError (code BAD_OPTION, a RangeError) naming the option, its range and the value.
 */
export function resolveSessionOptions(o: SessionOptions): ResolvedSessionOptions {
  const D = SESSION_DEFAULTS;
  return {
    userIndex: o.userIndex,
    duplicateLogin: { ...(o.duplicateLogin ?? D.duplicateLogin) },
    userIndexCheckInterval: check('userIndexCheckInterval', o.userIndexCheckInterval ?? D.userIndexCheckInterval, RANGES.timerMs),
    maxUserIdBytes: check('maxUserIdBytes', o.maxUserIdBytes ?? D.maxUserIdBytes, RANGES.count),
    maxSettings: check('maxSettings', o.maxSettings ?? D.maxSettings, RANGES.count),
    maxSettingKeyBytes: check('maxSettingKeyBytes', o.maxSettingKeyBytes ?? D.maxSettingKeyBytes, RANGES.count),
    maxSettingValueBytes: check('maxSettingValueBytes', o.maxSettingValueBytes ?? D.maxSettingValueBytes, RANGES.count),
    maxSettingsBytes: check('maxSettingsBytes', o.maxSettingsBytes ?? D.maxSettingsBytes, RANGES.count),
  };
}
