import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ReasonCode } from '../protocol/mqtt5';

/** The verified claims of a token, as the authenticate hook sees them (`ConnectInfo.jwt`). */
export type JwtClaims = Readonly<JWTPayload>;

/**
 * Gate option `jwt`: JSON Web Tokens (RFC 7519) checked at CONNECT. Exactly one key source:
 * `secret` (HMAC), `publicKey` (PEM) or `jwksUri` (a JSON Web Key Set, RFC 7517 §5, fetched
 * and cached). Defaults of the other fields are in `DEFAULTS.jwt` (options.ts).
 */
export interface JwtOptions {
  /**
   * HMAC secret (HS256 / HS384 / HS512, RFC 7518 §3.2), UTF-8 text or bytes; at least 32
   * bytes (RFC 7518 §3.2: a key at least as long as the hash output).
   */
  secret?: string | Uint8Array;
  /** PEM public key (SPKI) or X.509 certificate: RSA (RS*, PS*), EC (ES*) or Ed25519 / Ed448 (EdDSA). */
  publicKey?: string;
  /** URL (http: or https:) of a JSON Web Key Set; keys are picked by `kid` and cached (jose createRemoteJWKSet). */
  jwksUri?: string;
  /**
   * Algorithms accepted in the token's `alg` header (RFC 7515 §4.1.1). Required with
   * `publicKey` and `jwksUri` (asymmetric only; HS* would let a public key be used as an HMAC
   * secret); with `secret`, HS* only, default `['HS256']`. `none` is never accepted.
   */
  algorithms?: string[];
  /** Required `iss` (RFC 7519 §4.1.1), one or any of several; unchecked when absent. */
  issuer?: string | string[];
  /** Required `aud` (RFC 7519 §4.1.3), one or any of several; unchecked when absent. */
  audience?: string | string[];
  /** Claim holding the user id the session is bound to: a non-empty string within maxUserIdBytes. Default `'sub'`. */
  userIdClaim?: string;
  /** Seconds of clock skew allowed on `exp` and `nbf`, at CONNECT and for the expiry deadline. Default 5. */
  clockTolerance?: number;
  /** Longest token accepted, bytes; longer is refused before it is parsed. Default 8192. */
  maxTokenBytes?: number;
  /** ms a connection waits between two `gate/HD_refresh` requests; one sooner gets `RATE_LIMITED`. Default 1000. */
  refreshInterval?: number;
  /** `jwksUri`: ms after a fetch during which an unknown `kid` does not trigger another fetch. Default 30 000 (jose's). */
  jwksCooldown?: number;
  /** `jwksUri`: ms a fetched key set is used before it is fetched again. Default 600 000 (jose's). */
  jwksCacheMaxAge?: number;
  /** `jwksUri`: ms a fetch may take; past it the CONNECT is refused as server unavailable. Default 5000 (jose's). */
  jwksTimeout?: number;
}

/** The `jwt` option checked and filled in, with its key ready. */
export interface ResolvedJwtOptions {
  readonly key: Uint8Array | KeyObject | JWTVerifyGetKey;
  readonly algorithms: readonly string[];
  readonly issuer: string | string[] | undefined;
  readonly audience: string | string[] | undefined;
  readonly userIdClaim: string;
  readonly clockTolerance: number;
  readonly maxTokenBytes: number;
  readonly refreshInterval: number;
  /** maxUserIdBytes of the gate (0 = none): the longest user claim accepted. */
  readonly maxUserIdBytes: number;
}

/** Defaults of the `jwt` fields (the option itself is off by default). */
export interface JwtDefaults {
  userIdClaim: string;
  clockTolerance: number;
  maxTokenBytes: number;
  refreshInterval: number;
  jwksCooldown: number;
  jwksCacheMaxAge: number;
  jwksTimeout: number;
}

const HMAC = ['HS256', 'HS384', 'HS512'];
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** RFC 7518 §3.2: "A key of the same size as the hash output (for instance, 256 bits for HS256) or larger MUST be used". */
const MIN_SECRET_BYTES = 32;

function bad(message: string): never {
  throw new RangeError(`gate option jwt: ${message}`);
}

function ms(name: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) bad(`${name} must be a number ≥ 0, got ${v}`);
  return v;
}

/**
 * Checks the `jwt` option and prepares its key (the PEM parsed, the JWKS fetcher made; no
 * network use until the first CONNECT).
 * @throws RangeError for no key source or more than one, a secret under 32 bytes, a PEM
 *   that is not a public key, a jwksUri that is not http(s), algorithms missing (public
 *   keys), unknown, `none`, or of the wrong family for the key, or a bad number.
 */
export function resolveJwtOptions(o: JwtOptions, d: JwtDefaults, maxUserIdBytes: number): ResolvedJwtOptions {
  const sources = [o.secret, o.publicKey, o.jwksUri].filter((s) => s !== undefined);
  if (sources.length !== 1) bad('give exactly one of secret, publicKey, jwksUri');
  const family = o.secret !== undefined ? HMAC : ASYMMETRIC;
  if (o.algorithms === undefined && o.secret === undefined) bad('algorithms is required with publicKey or jwksUri (e.g. ["RS256"])');
  const algorithms = [...(o.algorithms ?? ['HS256'])];
  if (algorithms.length === 0) bad('algorithms must not be empty');
  for (const alg of algorithms) {
    if (!family.includes(alg))
      bad(
        `algorithm ${JSON.stringify(alg)} cannot be used with ${o.secret !== undefined ? 'secret' : 'a public key'} (allowed: ${family.join(', ')})`,
      );
  }
  let key: ResolvedJwtOptions['key'];
  if (o.secret !== undefined) {
    key = typeof o.secret === 'string' ? new TextEncoder().encode(o.secret) : o.secret;
    if (key.byteLength < MIN_SECRET_BYTES) bad(`secret must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2)`);
  } else if (o.publicKey !== undefined) {
    try {
      key = createPublicKey(o.publicKey);
    } catch (err) {
      bad(`publicKey is not a PEM public key or certificate (${(err as Error).message})`);
    }
  } else {
    let url: URL;
    try {
      url = new URL(o.jwksUri as string);
    } catch {
      bad(`jwksUri ${JSON.stringify(o.jwksUri)} is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') bad('jwksUri must be http: or https:');
    key = createRemoteJWKSet(url, {
      cooldownDuration: ms('jwksCooldown', o.jwksCooldown ?? d.jwksCooldown),
      cacheMaxAge: ms('jwksCacheMaxAge', o.jwksCacheMaxAge ?? d.jwksCacheMaxAge),
      timeoutDuration: ms('jwksTimeout', o.jwksTimeout ?? d.jwksTimeout),
    });
  }
  const maxTokenBytes = o.maxTokenBytes ?? d.maxTokenBytes;
  if (!Number.isInteger(maxTokenBytes) || maxTokenBytes <= 0) bad(`maxTokenBytes must be a positive integer, got ${maxTokenBytes}`);
  const userIdClaim = o.userIdClaim ?? d.userIdClaim;
  if (typeof userIdClaim !== 'string' || userIdClaim === '') bad('userIdClaim must be a non-empty string');
  return {
    key,
    algorithms,
    issuer: o.issuer,
    audience: o.audience,
    userIdClaim,
    clockTolerance: ms('clockTolerance', o.clockTolerance ?? d.clockTolerance),
    maxTokenBytes,
    refreshInterval: ms('refreshInterval', o.refreshInterval ?? d.refreshInterval),
    maxUserIdBytes,
  };
}

/** A token that passed: the user it names, its claims, and when the connection must end. */
export interface VerifiedToken {
  userId: string;
  claims: JwtClaims;
  /** Epoch ms at which a connection on this token is closed: (`exp` + clockTolerance) · 1000; Infinity without `exp`. */
  deadline: number;
}

/**
 * Why a token was refused: an MQTT 5 CONNACK reason code (its 3.1.1 return code is mapped by
 * connect.ts: 0x86 → 4, 0x87 → 5, 0x88 → 3), a short stable text for the client, and the
 * detail for the log only.
 */
export class JwtRefusal extends Error {
  constructor(
    readonly reasonCode: number,
    /** What the client is told (Reason String, or the refresh reply's Error). */
    readonly clientText: string,
    /** The cause, for the gate's log. */
    readonly detail: string,
  ) {
    super(clientText);
    this.name = 'JwtRefusal';
  }
}

/** Texts a client may see. Stable: clients may match on them. */
export const JWT_TEXT = {
  missing: 'token required',
  tooLarge: 'token too large',
  invalid: 'invalid token',
  expired: 'token expired',
  notYetValid: 'token not yet valid',
  notAccepted: 'token not accepted',
  noUser: 'token has no valid user claim',
  unavailable: 'token cannot be verified now',
} as const;

const isWellFormed = (s: string): boolean => !/\p{Cs}/u.test(s);

/**
 * Checks tokens with jose's jwtVerify: signature, `alg` against `algorithms`, `exp` / `nbf`
 * with clockTolerance, `iss`, `aud`, then the user claim.
 */
export class JwtVerifier {
  constructor(readonly options: ResolvedJwtOptions) {}

  /**
   * @param token the raw token (the CONNECT password, MQTT 5 Authentication Data, or a refresh's `token`).
   * @throws JwtRefusal: 0x86 (bad user name or password) for a missing, oversized, malformed,
   *   badly signed, wrong-`alg` or expired token; 0x87 (not authorized) for one that verifies
   *   but is not for this gate (`iss`, `aud`, `nbf`) or has no usable user claim; 0x88
   *   (server unavailable) when the JWKS cannot be fetched.
   */
  async verify(token: Buffer | string | undefined): Promise<VerifiedToken> {
    const o = this.options;
    if (token === undefined || token.length === 0) throw new JwtRefusal(ReasonCode.BadUserNameOrPassword, JWT_TEXT.missing, 'no token');
    const size = typeof token === 'string' ? Buffer.byteLength(token, 'utf8') : token.length;
    if (size > o.maxTokenBytes)
      throw new JwtRefusal(ReasonCode.BadUserNameOrPassword, JWT_TEXT.tooLarge, `token of ${size} bytes, over maxTokenBytes ${o.maxTokenBytes}`);
    const text = typeof token === 'string' ? token : token.toString('utf8');
    let claims: JWTPayload;
    try {
      const verifyOptions = { algorithms: [...o.algorithms], issuer: o.issuer, audience: o.audience, clockTolerance: o.clockTolerance };
      // One call per key kind: jose types jwtVerify's key and key-getter overloads apart.
      const result = typeof o.key === 'function' ? await jwtVerify(text, o.key, verifyOptions) : await jwtVerify(text, o.key, verifyOptions);
      claims = result.payload;
    } catch (err) {
      throw classify(err);
    }
    const userId = claims[o.userIdClaim];
    if (typeof userId !== 'string' || userId === '' || !isWellFormed(userId)) {
      throw new JwtRefusal(ReasonCode.NotAuthorized, JWT_TEXT.noUser, `claim ${o.userIdClaim} is not a non-empty string`);
    }
    if (o.maxUserIdBytes > 0 && Buffer.byteLength(userId, 'utf8') > o.maxUserIdBytes) {
      throw new JwtRefusal(ReasonCode.NotAuthorized, JWT_TEXT.noUser, `claim ${o.userIdClaim} is over maxUserIdBytes ${o.maxUserIdBytes}`);
    }
    const deadline = typeof claims.exp === 'number' ? (claims.exp + o.clockTolerance) * 1000 : Infinity;
    return { userId, claims: Object.freeze(claims), deadline };
  }
}

/** A jose (or fetch) error as a refusal. */
function classify(err: unknown): JwtRefusal {
  const detail = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
  if (err instanceof errors.JWTExpired) return new JwtRefusal(ReasonCode.BadUserNameOrPassword, JWT_TEXT.expired, detail);
  if (err instanceof errors.JWTClaimValidationFailed) {
    const text = err.claim === 'nbf' ? JWT_TEXT.notYetValid : JWT_TEXT.notAccepted;
    return new JwtRefusal(ReasonCode.NotAuthorized, text, detail);
  }
  // The key set could not be had (timeout, HTTP status, not a JWKS): not the client's fault.
  if (
    err instanceof errors.JWKSTimeout ||
    err instanceof errors.JWKSInvalid ||
    (err instanceof errors.JOSEError && err.code === errors.JOSEError.code)
  ) {
    return new JwtRefusal(ReasonCode.ServerUnavailable, JWT_TEXT.unavailable, detail);
  }
  // Malformed, bad signature, alg not allowed, no key for its kid, key of the wrong type (TypeError).
  if (err instanceof errors.JOSEError || err instanceof TypeError) return new JwtRefusal(ReasonCode.BadUserNameOrPassword, JWT_TEXT.invalid, detail);
  return new JwtRefusal(ReasonCode.ServerUnavailable, JWT_TEXT.unavailable, detail); // e.g. ECONNREFUSED fetching the JWKS
}
