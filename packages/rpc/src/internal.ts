// @mqgate/rpc/internal: what mqgate's sibling packages (gate, client, nats, storage, cli) share
// and apps do not need: wire codecs, user-index key helpers, the option kit's checkers. No
// stability promise outside this repository; apps use @mqgate/rpc.
export { DeadlineSweep } from './deadlines';
export { messageOf } from './error-message';
export { clientTextOf, describeValue, fromWireError, isClientText, toWireError } from './errors';
export type { WireError } from './errors';
export { checkPushProperties, checkUserProperties, unwrapReply } from './mqtt5';
export { MAX_TIMER_MS, RANGES, inRange, optionChecker, tokenBucket } from './option-kit';
export type { TokenBucket } from './option-kit';
export {
  EncodeError,
  RequestArgsError,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  fromWireValue,
  toBuffer,
  toWireValue,
} from './rpc-codec';
export type { RpcRequest, RpcResponse, WireValue } from './rpc-codec';
export { collectUserProperties } from './session-data';
export { hash, pickSticky } from './sticky';
export { describeAddress } from './transport';
export { gateCallTimeout, pushBytes } from './user-directory';
export { banMember, detachedKey, fieldOf, isCurrent, liveGatesOf, parseBanMember, parseField, policyLimits } from './user-index';
export { checkQos } from './gate-service';
export { INPUT_ECHO_CHARS, clipInput, quoteInput } from './input-echo';
