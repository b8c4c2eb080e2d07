/** Connection states. CONNECT moves NEW → CONNECTING (authenticate) → CONNECTED; any state → CLOSED. */
export enum State {
  New = 0,
  Connecting = 1,
  Connected = 2,
  Closed = 3,
}
