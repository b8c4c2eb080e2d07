/**
 * Counters the protocol layer increments on its hot path (plain numbers: no label lookups
 * per packet); Prometheus reads them at scrape time.
 */
export interface Traffic {
  bytesIn: number;
  bytesOut: number;
  /** PUBLISH packets written to clients (replies and pushes). */
  sent: number;
  /** PUBLISH packets not written: connection not connected, or closed as a slow consumer. */
  dropped: number;
  /** Times a connection stopped reading (maxInflight reached, unsent output, or a stop freezing it). */
  pauses: number;
  /** Times a connection stopped reading because it went over its messageRate or byteRate. */
  ratePauses: number;
  /** Packets received, by mqtt-packet `cmd` (at most the 14 MQTT packet types). */
  packetsIn: Record<string, number>;
}
