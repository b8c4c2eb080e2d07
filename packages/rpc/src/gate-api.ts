/**
 * Wire names of the gate's session service functions (mqant's, see gate/base/mqtt_gate.go
 * OnInit). The typed contract, with each function's arguments and result, is
 * {@link GateService} in gate-service.ts; call it through `gateClient(transport, serverId)`.
 */
export const GateFunctions = {
  Update: 'Update',
  Bind: 'Bind',
  UnBind: 'UnBind',
  Push: 'Push',
  Set: 'Set',
  Remove: 'Remove',
  Send: 'Send',
  SendBatch: 'SendBatch',
  BroadCast: 'BroadCast',
  IsConnect: 'IsConnect',
  Close: 'Close',
  Counts: 'Counts',
  /** mqgate's own: hands a detached session over to the gate a client resumes it on. */
  HandOver: 'HandOver',
} as const;
export type GateFunction = (typeof GateFunctions)[keyof typeof GateFunctions];

/** Module type a gate serves its session service under. */
export const GATE_MODULE_TYPE = 'gate';

/**
 * Topic of the push a client receives just before the gate closes its connection on
 * purpose (a `Close` with a reason, a takeover, a graceful stop). Body: JSON
 * `{"reason": string}`. Like Pomelo's kick packet, so a client can tell a kick from a
 * network failure.
 */
export const KICK_TOPIC = 'gate/kick';

/** Prefix every client-callable handler name carries (mqant rule). */
export const HANDLER_PREFIX = 'HD_';

/**
 * The reply envelope of a request, JSON on the wire: `{"Trace","Error","Result"}` (mqant's
 * default ProtocolMarshal, app/app.go). `Error` is `""` on success.
 */
export interface ReplyEnvelope {
  Trace: string;
  Error: string;
  Result: unknown;
}
