/**
 * Environment variables the process was given under a prefix it reads but does not know: a
 * misspelt or renamed `MQGATE_*` variable would otherwise be ignored without a word.
 * @param env the process environment
 * @param known every variable name the process reads
 * @param prefix the prefix the process owns; default `MQGATE_`
 * @returns the unknown names, sorted
 */
export function unknownVariables(env: NodeJS.ProcessEnv, known: Iterable<string>, prefix = 'MQGATE_'): string[] {
  const names = new Set(known);
  return Object.keys(env)
    .filter((name) => name.startsWith(prefix) && !names.has(name))
    .sort();
}

/**
 * One warning line per unknown variable (see {@link unknownVariables}) on stderr, before
 * the logger exists: `<who>: warning: MQGATE_X is not a variable of <who>; ignored`, with a
 * hint for a renamed one.
 * @param renamed old name → the name that replaced it
 */
export function warnUnknownVariables(who: string, env: NodeJS.ProcessEnv, known: Iterable<string>, renamed: Record<string, string> = {}): void {
  for (const name of unknownVariables(env, known)) {
    const hint = renamed[name] ? ` (it is now ${renamed[name]})` : '';
    process.stderr.write(`${who}: warning: ${name} is not a variable of ${who}; ignored${hint}\n`);
  }
}
