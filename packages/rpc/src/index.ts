// @mqgate/rpc's public API, by name: what apps, modules, transports and stores written against
// mqgate use. What only mqgate's own packages use (wire codecs, user-index key helpers, the
// option kit's checkers) is in @mqgate/rpc/internal, with no promise of stability.
export type { AppComponent, AppContext } from './component';
export {
  BadArgumentError,
  BadReplyError,
  CLIENT_TEXTS,
  DeadlineError,
  ERROR_CODES,
  ErrorCodes,
  FunctionNotFoundError,
  LimitError,
  NoServerError,
  RpcError,
  ServerLostError,
  SessionNotFoundError,
  TransportClosedError,
} from './errors';
export type { AnyErrorCode, ErrorCode } from './errors';
export { GATE_MODULE_TYPE, GateFunctions, HANDLER_PREFIX, KICK_TOPIC } from './gate-api';
export type { GateFunction, ReplyEnvelope } from './gate-api';
export { GATE_VERBS, gateClient, serveGateService } from './gate-service';
export type { BufferedPush, GateClient, GateService, GateVerb, HandedOverSession, PushQos, SessionCounts } from './gate-service';
export { InProcessTransport } from './in-process-transport';
export type { InProcessTransportOptions } from './in-process-transport';
export { silentLogger } from './logger';
export type { Logger } from './logger';
export { REPLY_PROPERTIES_TAG, replyWithProperties } from './mqtt5';
export type { Mqtt5PushProperties, ReplyProperties, ReplyWithProperties } from './mqtt5';
export { OptionError } from './option-kit';
export type { OptionRange } from './option-kit';
export { PROTO_DIR, decodeSession, encodeSession, isSessionData, makeSessionData } from './session-data';
export type {
  Address,
  CallContext,
  CallOptions,
  RpcHandler,
  RpcServerHandle,
  RpcTransport,
  ServerEventName,
  ServerInfo,
  TransportEvents,
  TransportGauges,
} from './transport';
export type { Mqtt5Request, RpcValue, SessionData, UserProperties } from './types';
export { UserDirectory } from './user-directory';
export type { PushBody } from './user-directory';
export { MemoryUserIndex } from './user-index';
export type { BanKind, ClaimResult, DuplicateLoginPolicy, LiveGate, SharedBan, UserIndex, UserIndexEntry, UserLocation } from './user-index';
