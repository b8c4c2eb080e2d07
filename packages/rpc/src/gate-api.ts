/**
 * The gate's session service: the RPC functions a gate serves at its own server id
 * (`SessionData.serverId`), and the conventions shared by the gate and modules.
 * Names and argument orders follow mqant (gate/base/mqtt_gate.go OnInit, gate_handler.go)
 * without mqant's leading trace-span argument.
 *
 * | function    | args                                      | result                    |
 * |-------------|-------------------------------------------|---------------------------|
 * | `Update`    | sessionId                                 | SessionData               |
 * | `Bind`      | sessionId, userId                         | SessionData               |
 * | `UnBind`    | sessionId, delete? (boolean)              | SessionData               |
 * | `Push`      | sessionId, settings `{key: value}`        | SessionData (keys merged) |
 * | `Set`       | sessionId, key, value                     | SessionData               |
 * | `Remove`    | sessionId, key or keys[]                  | SessionData               |
 * | `Send`      | sessionId, topic, body (bytes)            | null                      |
 * | `SendBatch` | sessionIds (comma separated), topic, body | number delivered          |
 * | `BroadCast` | topic, body                               | number delivered          |
 * | `IsConnect` | sessionId (ignored), userId               | boolean                   |
 * | `Close`     | sessionId, reason? (string)               | null                      |
 * | `Counts`    | (none)                                    | `{total, bound, guests}`  |
 *
 * Differences from mqant, on purpose: `Push` only ever carries the keys that changed
 * (the client never resends the whole map, so it cannot overwrite another module's newer
 * value); `Remove` accepts several keys; `IsConnect` answers `false` instead of an error;
 * `Close` carries a reason that the client receives on {@link KICK_TOPIC} first.
 * `UnBind` with delete `true` also deletes what the gate's StorageHandler holds for the user
 * (an explicit logout). An unknown session id fails with code `NO_SESSION`; a change that is
 * live but could not be stored fails with code `STORAGE` (the gate retries the write).
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
