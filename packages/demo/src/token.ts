import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { ConfigError, readConfig } from './config';

/** Default lifetime of a development token, seconds. */
export const DEFAULT_TOKEN_TTL = 3600;

const USAGE = 'usage: MQGATE_JWT_SECRET=<secret> npm run token -- <userId> [--ttl <seconds>]';

/**
 * A development token for the demo: HS256 with MQGATE_JWT_SECRET, `sub` = userId, `iat`
 * now, `exp` now + ttl seconds (RFC 7519 §4.1). The gate's `jwt` option checks the same.
 */
export function mintToken(secret: string, userId: string, ttlSeconds = DEFAULT_TOKEN_TTL): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}

/**
 * `npm run token -- alice [--ttl 3600]`: prints a token for `alice` on stdout, nothing else.
 * `--help` (`-h`) prints the usage on stdout; an unknown option is an error, never a user id.
 * @returns the exit code: 0, or 2 for bad arguments or no (or a short) MQGATE_JWT_SECRET.
 */
export async function tokenCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    return fail(`${(err as Error).message}\n${USAGE}`);
  }
  if (parsed.values.help) {
    process.stdout.write(`${USAGE}\n  --ttl <seconds>  lifetime (exp - iat), default ${DEFAULT_TOKEN_TTL}\n`);
    return 0;
  }
  const ttl = parsed.values.ttl === undefined ? DEFAULT_TOKEN_TTL : Number(parsed.values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) return fail(`--ttl must be a positive integer of seconds\n${USAGE}`);
  const rest = parsed.positionals;
  if (rest.length !== 1 || rest[0] === '') return fail(USAGE);
  let secret: string | undefined;
  try {
    secret = readConfig(env).jwtSecret;
  } catch (err) {
    return fail(err instanceof ConfigError ? err.message : String(err));
  }
  if (secret === undefined) return fail(`MQGATE_JWT_SECRET is not set (the demo's gate and this script share it)\n${USAGE}`);
  process.stdout.write(`${await mintToken(secret, rest[0], ttl)}\n`);
  return 0;
}

function fail(message: string): number {
  process.stderr.write(`mqgate token: ${message}\n`);
  return 2;
}

if (require.main === module) {
  tokenCli(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
