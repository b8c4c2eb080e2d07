import { BufferList } from 'bl';
import * as mqtt from 'mqtt-packet';

/** The fields of mqtt-packet 9's Parser this module replaces (parser.js `parser()` and `_resetState()`). */
interface ParserInternals extends mqtt.Parser {
  /** Its state machine's step names, by index; read, never written. */
  _states: string[];
  /** The parse options; replaced by the CONNECT packet once one is parsed, never written into. */
  settings: object;
  packet: object;
  error: Error | null;
  /** The input not parsed yet: a `bl` BufferListStream, a Duplex stream, in mqtt-packet. */
  _list: object;
  _stateCounter: number;
  _resetState(): void;
}

const probe = mqtt.parser() as ParserInternals;
const Base = probe.constructor as new () => ParserInternals;
const Packet = probe.packet.constructor as new () => object;
const STATES = probe._states;
if (!Array.isArray(STATES) || typeof Base.prototype._resetState !== 'function' || typeof probe._stateCounter !== 'number') {
  throw new Error('mqtt-packet: its Parser is not the one packet-parser.ts was written for (mqtt-packet 9)');
}
const NO_SETTINGS = Object.freeze({});

/**
 * mqtt-packet's Parser holding its unparsed input in a plain `bl` BufferList instead of a
 * BufferListStream (a readable-stream Duplex, with its ReadableState and WritableState), and
 * sharing its step names and initial (empty) options: about 600 bytes less per connection
 * and no stream construction per CONNECT. The parser only appends to, reads and consumes its
 * list, which a BufferList does the same way; the parsing itself is mqtt-packet's, unchanged
 * (packet-parser.test.ts checks packet for packet against `mqtt.parser()`).
 */
class LeanParser extends Base {
  constructor(settings: object | undefined) {
    super();
    this.settings = settings ?? NO_SETTINGS;
    this._resetState();
  }

  override _resetState(): void {
    this.packet = new Packet();
    this.error = null;
    this._list = new BufferList();
    this._stateCounter = 0;
  }
}
(LeanParser.prototype as ParserInternals)._states = STATES;

/** A new MQTT packet parser (3.1, 3.1.1; it switches to MQTT 5 at a level-5 CONNECT), as `mqtt.parser()`. */
export function packetParser(settings?: object): mqtt.Parser {
  return new LeanParser(settings);
}
