import { connect as netConnect, type Socket } from 'node:net';
import { RawPeer } from './raw-peer';

/** A raw 3.1.1 peer over TCP that reads everything the gate sends and never PUBACKs (it acks only what a test sends itself). */
export class Hoarder extends RawPeer {
  readonly closed: Promise<void>;
  private constructor(readonly socket: Socket) {
    super(`hoard-${Math.random().toString(16).slice(2)}`);
    socket.on('data', (d) => this.parser.parse(d));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  /** Connects to the gate's TCP port (no CONNECT yet). */
  static open(port: number): Promise<Hoarder> {
    return new Promise((resolve, reject) => {
      const s = netConnect(port, '127.0.0.1', () => resolve(new Hoarder(s)));
      s.once('error', reject);
    });
  }

  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Drops what it parsed (it reads, it does not keep). */
  forget(): void {
    this.packets.length = 0;
  }
}
