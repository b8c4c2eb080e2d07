import type { PacketHandlers } from '../connection';
import { handlePuback, ignoreAck } from './acks';
import { handleAuth } from './auth';
import { handleConnect } from './connect';
import { handleDisconnect } from './disconnect';
import { handlePingreq } from './pingreq';
import { handlePublish } from './publish';
import { handlePubrel } from './pubrel';
import { handleSubscribe } from './subscribe';
import { handleUnsubscribe } from './unsubscribe';

/**
 * Client packet type → handler. Types a client must not send (CONNACK, SUBACK, ...) have
 * none, and close the connection (MQTT 5: after DISCONNECT 0x82). AUTH is MQTT 5 only
 * (mqtt-packet parses it only after a level-5 CONNECT).
 */
export const packetHandlers: PacketHandlers = {
  connect: handleConnect,
  publish: handlePublish,
  pubrel: handlePubrel,
  subscribe: handleSubscribe,
  unsubscribe: handleUnsubscribe,
  pingreq: handlePingreq,
  disconnect: handleDisconnect,
  puback: handlePuback,
  pubrec: ignoreAck,
  pubcomp: ignoreAck,
  auth: handleAuth,
};
