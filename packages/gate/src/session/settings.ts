/**
 * Settings maps as the gate keeps them: frozen, prototype-free records of string to string,
 * replaced rather than mutated so snapshots can share them.
 */

/**
 * A writable copy of settings without a prototype, so that any string is a key
 * (`__proto__` included) and nothing is inherited.
 */
export function copySettings(base: Readonly<Record<string, string>>): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, base);
}

/**
 * The one merge of settings from elsewhere (the store at Bind, an earlier connection's
 * unstored changes) into live ones: every key of `base`, then every key of `live` over it
 * (live keys win, as mqant's Bind merge). Returns a new frozen map; neither input changes.
 */
export function mergeUnderLive(base: Readonly<Record<string, string>>, live: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  return Object.freeze(Object.assign(copySettings(base), live));
}
