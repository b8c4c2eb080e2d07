import * as mqttPacket from 'mqtt-packet';

/**
 * What the raw MQTT peers (RawClient over TCP, RawWs over WebSocket) share: the packets the
 * gate sent, parsed (3.1.1) and kept until awaited, and sending packets or bytes. A subclass
 * feeds received bytes to `parser` and says how bytes go out.
 */
export abstract class RawPeer {
  /** Packets received and not yet taken by {@link next}. */
  readonly packets: mqttPacket.Packet[] = [];
  private waiters: Array<{ match: (p: mqttPacket.Packet) => boolean; resolve: (p: mqttPacket.Packet) => void }> = [];
  protected readonly parser: ReturnType<typeof mqttPacket.parser>;

  /**
   * @param clientId the client id of {@link connect} unless overridden
   * @param protocolVersion how received packets are parsed (4; 5 for MQTT 5 peers)
   */
  protected constructor(
    private readonly clientId: string,
    protocolVersion = 4,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion });
    this.parser.on('packet', (p: mqttPacket.Packet) => {
      this.packets.push(p);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(p)) return true;
        this.packets.splice(this.packets.indexOf(p), 1);
        w.resolve(p);
        return false;
      });
    });
  }

  /** Sends raw bytes (on a WebSocket: as one binary frame). */
  abstract sendBytes(bytes: Buffer): void;

  /** Sends one packet (on a WebSocket: as one binary frame). */
  send(packet: mqttPacket.Packet, protocolVersion = 4): void {
    this.sendBytes(mqttPacket.generate(packet, { protocolVersion }));
  }

  /** Sends CONNECT (3.1.1, clean, keepalive 60 unless overridden) and awaits CONNACK. */
  async connect(fields: Partial<mqttPacket.IConnectPacket> = {}): Promise<mqttPacket.IConnackPacket> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: this.clientId, keepalive: 60, ...fields });
    return (await this.next('connack')) as mqttPacket.IConnackPacket;
  }

  /** Resolves with the first packet (already received or future) of that type matching `pred`. */
  next(cmd: mqttPacket.PacketCmd, pred: (p: mqttPacket.Packet) => boolean = () => true): Promise<mqttPacket.Packet> {
    const match = (p: mqttPacket.Packet) => p.cmd === cmd && pred(p);
    const idx = this.packets.findIndex(match);
    if (idx >= 0) return Promise.resolve(this.packets.splice(idx, 1)[0]);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}
