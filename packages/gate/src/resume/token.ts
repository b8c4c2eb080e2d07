import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Resume tokens (a resume needs the current resume token). A token is `r1.<userId, base64url>.<sessionId>.<secret>`
 * where the secret is 24 bytes (192 bits) from the OS CSPRNG, base64url. The client treats it
 * as opaque; the gate reads the user id and session id out of it to find the session (on
 * this gate, on another one through the user index, or in the StorageHandler by user id),
 * and keeps only the SHA-256 of the whole token, compared in constant time.
 */
const PREFIX = 'r1';
const SECRET_BYTES = 24;
/** Longest token accepted, characters: a user id of up to 4 KiB base64url plus the rest. */
export const MAX_TOKEN_LENGTH = 6000;

/** A freshly issued token and its hash (the only part the gate keeps). */
export interface IssuedToken {
  token: string;
  hash: Buffer;
}

/** What a well-formed token names. */
export interface TokenRef {
  userId: string;
  sessionId: string;
  hash: Buffer;
}

/** SHA-256 of a token's UTF-8 bytes. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Issues a new token for the session `sessionId` of `userId`. */
export function issueToken(userId: string, sessionId: string): IssuedToken {
  const token = `${PREFIX}.${Buffer.from(userId, 'utf8').toString('base64url')}.${sessionId}.${randomBytes(SECRET_BYTES).toString('base64url')}`;
  return { token, hash: hashToken(token) };
}

/**
 * Reads a token presented by a client.
 * @returns the user id, session id and hash, or a message saying why it is malformed.
 */
export function parseToken(token: unknown): TokenRef | string {
  if (typeof token !== 'string' || token === '') return 'resume token missing: send {"token": "<the token from gate/session>"}';
  if (token.length > MAX_TOKEN_LENGTH) return `malformed resume token: longer than ${MAX_TOKEN_LENGTH} characters`;
  const parts = token.split('.');
  if (
    parts.length !== 4 ||
    parts[0] !== PREFIX ||
    !/^[0-9a-f]{32}$/.test(parts[2]) ||
    !/^[A-Za-z0-9_-]{32}$/.test(parts[3]) ||
    !/^[A-Za-z0-9_-]+$/.test(parts[1])
  ) {
    return 'malformed resume token';
  }
  return { userId: Buffer.from(parts[1], 'base64url').toString('utf8'), sessionId: parts[2], hash: hashToken(token) };
}

/** Constant-time comparison of two token hashes (false when either is missing or lengths differ). */
export function sameHash(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/**
 * What a gate presents to the `handOver` verb for an MQTT-native resume (rule 6, a CONNECT
 * with Clean Session 0 / Clean Start 0 and no token): SHA-256 of `mqgate-connect`, the user
 * id and the client id, NUL-separated. The owner gate matches it against its detached
 * sessions only (never an attached one). It proves nothing a gate could not compute: gates
 * trust each other's calls, as they do for every session verb.
 */
export function connectProof(userId: string, clientId: string): Buffer {
  return createHash('sha256').update(`mqgate-connect\u0000${userId}\u0000${clientId}`, 'utf8').digest();
}
