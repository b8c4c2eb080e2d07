import type { StorageFailure } from './persistence/persistence';
import type { SessionEvents } from './session/manager';
import type { TlsReload } from './wire/tls';

/** Gate events: the session events plus `storageError`. */
export interface GateEvents extends SessionEvents {
  /** A StorageHandler call failed (the gate keeps running and retries writes). */
  storageError: [failure: StorageFailure];
  /** The TLS certificates of a listener were reloaded (`error` set: the old ones stay). */
  tlsReload: [result: TlsReload];
}
