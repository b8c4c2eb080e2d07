// The gate's options: GateOptions is the intersection of each component's options (listeners,
// admission, protocol, routing, sessions, persistence, resume, ops) and the gate's own below;
// each component keeps its options, defaults and resolver beside its code, on the one
// validation kit of @mqgate/rpc (option-kit.ts, errors with code BAD_OPTION).
import { randomBytes } from 'node:crypto';
import { type Logger, type UserProperties } from '@mqgate/rpc';
import { optionChecker, RANGES } from '@mqgate/rpc/internal';
import { ADMISSION_DEFAULTS, resolveAdmissionOptions, type AdmissionOptions, type ResolvedAdmissionOptions } from './admission/options';
import { resolveJwtOptions, type JwtClaims, type JwtOptions, type ResolvedJwtOptions } from './jwt/verifier';
import { OPS_DEFAULTS, resolveOpsOptions, type OpsOptions, type ResolvedOpsOptions } from './ops/options';
import { PERSISTENCE_DEFAULTS, resolvePersistenceOptions, type PersistenceOptions, type ResolvedPersistenceOptions } from './persistence/options';
import { PROTOCOL_DEFAULTS, resolveProtocolOptions, type ProtocolOptions, type ResolvedProtocolOptions } from './protocol/options';
import { RESUME_DEFAULTS, resolveResumeOptions, type ResolvedResumeOptions, type ResumeOptions } from './resume/options';
import { ROUTING_DEFAULTS, resolveRoutingOptions, type ResolvedRoutingOptions, type RoutingOptions } from './routing/options';
import { SESSION_DEFAULTS, resolveSessionOptions, type ResolvedSessionOptions, type SessionOptions } from './session/options';
import { LISTENER_DEFAULTS, resolveListenerOptions, type ListenerOptions, type ResolvedListenerOptions } from './wire/options';
import type { ClientCertificate } from './wire/wire';

export type { ListenOptions, TcpListenOptions, TlsListenOptions, PemSource } from './wire/options';
export type { ClientCertificate } from './wire/wire';
export type { RateLimit } from './protocol/rate-limit';
export { autoMaxConnections, fileDescriptorLimit, FALLBACK_FILE_LIMIT } from './admission/options';

/** What the authenticate hook sees of a CONNECT (MQTT-3.1.3). */
export interface ConnectInfo {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  /** Client address (no port); see `trustedProxies`. */
  remoteAddress: string;
  network: 'tcp' | 'websocket';
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  protocolVersion: number;
  /** MQTT 5: the CONNECT's User Properties (MQTT 5.0 §3.1.2.11.8); undefined when none or before MQTT 5. */
  userProperties?: UserProperties;
  /**
   * MQTT 5: the CONNECT's Authentication Method (§3.1.2.11.9). The gate has no AUTH
   * exchange: a CONNECT with a method is refused with 0x8C (Bad authentication method)
   * unless this hook returns `true` (e.g. a token scheme checked in one step with
   * `authenticationData`).
   */
  authenticationMethod?: string;
  /** MQTT 5: the CONNECT's Authentication Data (§3.1.2.11.10). */
  authenticationData?: Buffer;
  /** True on the TLS listeners (`mqtts`, `wss`). */
  secure: boolean;
  /** The client certificate, when the listener has `requestCert` and the certificate was verified. */
  certificate: ClientCertificate | undefined;
  /** With the gate option `jwt`: the verified token's claims (the hook runs after verification). */
  jwt?: JwtClaims;
}

/**
 * The authenticate hook's answer: `true` accepts; `false` refuses with CONNACK return
 * code 5 / MQTT 5 reason code 0x87 (not authorized), or 0x8C (bad authentication method)
 * when the CONNECT named an Authentication Method; `{ returnCode: 4 }` refuses with 4 / 0x86
 * (bad user name or password). `{ reasonCode, reasonString? }` refuses with any MQTT 5
 * CONNACK reason code ≥ 0x80 (MQTT 5.0 §3.2.2.2) and a Reason String an MQTT 5 client sees;
 * a 3.1 / 3.1.1 client gets 4 for 0x86, 3 for 0x88 / 0x89, else 5.
 * A hook that throws or rejects refuses with 3 / 0x88 (server unavailable).
 *
 * `{ userId }` accepts and names the client's user (it does not bind: a module's Bind does).
 * It lets a CONNECT with Clean Session 0 (3.1.1) / Clean Start 0 (5) resume the detached
 * session of that user with the same client id (CONNACK Session Present 1:
 * Clean Session 0 / Clean Start 0 resumes the user's detached session; MQTT-3.2.2-2, MQTT 5.0 §3.2.2.1.1), and a CONNECT with Clean Session 1 /
 * Clean Start 1 discard it (MQTT-3.1.2-6). With the gate option `jwt` the token names the
 * user instead, and this field is ignored. An empty `userId` is the same as `true`.
 */
export type AuthenticateResult = boolean | { returnCode: 4 | 5 } | { reasonCode: number; reasonString?: string } | { userId: string };

/** The gate's own options: its id, the authenticate hook, JWT, logging and its stop. */
export interface CoreOptions {
  /** Node id of this gate; the `serverId` of its sessions. Default `gate@<16 random hex>` (mqant's form). */
  serverId?: string;
  /** Called at CONNECT; without it every CONNECT is accepted. */
  authenticate?: (info: ConnectInfo) => AuthenticateResult | Promise<AuthenticateResult>;
  /**
   * ms a graceful stop waits for requests in flight, then for the session store to take the
   * changes not stored yet (retried), before closing connections; users whose last change is
   * still unstored then are logged at error. A store that stalls (answers nothing) for longer
   * than this: a write still in flight at the deadline is judged when the store answers it,
   * after stop() resolved (logged as lost only if the store fails it, then one info line with
   * the counts, stop-unstored.ts); a change still queued for its next attempt is lost (logged
   * at the deadline). Default 10 000.
   */
  stopTimeout?: number;
  /** Where the gate logs; pino-compatible. Default: the app's logger, else silent. */
  logger?: Logger;
  /** ms over which `drain()` closes the connected clients, in batches. Default 10 000. */
  drainPeriod?: number;
  /**
   * JWT at CONNECT (see {@link JwtOptions}; field defaults in `DEFAULTS.jwt`): the token is
   * the Password (or MQTT 5 Authentication Data with Authentication Method `JWT`); a valid one
   * binds the session to its user before the CONNACK, an invalid one gets CONNACK 4 / 5
   * (MQTT 5: 0x86 / 0x87); the connection is closed at `exp` unless refreshed on
   * `gate/HD_refresh/<msgid>` `{"token"}`. Default: off.
   */
  jwt?: JwtOptions;
}

/** Gate options. Every field is optional; defaults are in {@link DEFAULTS}. */
export type GateOptions = CoreOptions &
  ListenerOptions &
  AdmissionOptions &
  ProtocolOptions &
  RoutingOptions &
  SessionOptions &
  PersistenceOptions &
  ResumeOptions &
  OpsOptions;

/** GateOptions with every default applied and every value checked. */
export type ResolvedGateOptions = Required<Omit<CoreOptions, 'authenticate' | 'logger' | 'jwt'>> & {
  authenticate: CoreOptions['authenticate'];
  logger: Logger | undefined;
  jwt: ResolvedJwtOptions | undefined;
} & ResolvedListenerOptions &
  ResolvedAdmissionOptions &
  ResolvedProtocolOptions &
  ResolvedRoutingOptions &
  ResolvedSessionOptions &
  ResolvedPersistenceOptions &
  ResolvedResumeOptions &
  ResolvedOpsOptions;

/** Every default, assembled from the components' own. */
export const DEFAULTS = {
  ...LISTENER_DEFAULTS,
  ...ADMISSION_DEFAULTS,
  ...PROTOCOL_DEFAULTS,
  ...ROUTING_DEFAULTS,
  ...SESSION_DEFAULTS,
  ...PERSISTENCE_DEFAULTS,
  ...RESUME_DEFAULTS,
  ...OPS_DEFAULTS,
  stopTimeout: 10_000,
  drainPeriod: 10_000,
  /** Defaults of the `jwt` fields; JWT itself is off unless `jwt` is given. ms, s (clockTolerance) and bytes. */
  jwt: {
    userIdClaim: 'sub',
    clockTolerance: 5,
    maxTokenBytes: 8192,
    refreshInterval: 1000,
    jwksCooldown: 30_000,
    jwksCacheMaxAge: 600_000,
    jwksTimeout: 5000,
  },
} as const;

const check = optionChecker('gate option');

/**
 * Fills in defaults and checks values, each component its own.
 * @throws OptionError (code BAD_OPTION, a RangeError) for a value out of its range (a
 *   non-positive limit or timeout, topicAliasMaximum above 65 535, a messageRate / byteRate
 *   that is neither false nor `{ perSecond > 0, burst ≥ 1 }`...), RangeError for a bad `jwt`
 *   (see resolveJwtOptions).
 */
export function resolveOptions(o: GateOptions = {}): ResolvedGateOptions {
  const session = resolveSessionOptions(o);
  return {
    serverId: o.serverId ?? `gate@${randomBytes(8).toString('hex')}`,
    authenticate: o.authenticate,
    logger: o.logger,
    stopTimeout: check('stopTimeout', o.stopTimeout ?? DEFAULTS.stopTimeout, RANGES.positive),
    drainPeriod: check('drainPeriod', o.drainPeriod ?? DEFAULTS.drainPeriod, RANGES.count),
    jwt: o.jwt === undefined ? undefined : resolveJwtOptions(o.jwt, DEFAULTS.jwt, session.maxUserIdBytes),
    ...resolveListenerOptions(o),
    ...resolveAdmissionOptions(o),
    ...resolveProtocolOptions(o),
    ...resolveRoutingOptions(o),
    ...session,
    ...resolvePersistenceOptions(o),
    ...resolveResumeOptions(o),
    ...resolveOpsOptions(o),
  };
}
