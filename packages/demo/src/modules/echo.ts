import { defineModule, replyWithProperties } from '@mqgate/client';

/**
 * `echo`: `HD_echo` returns what it got: a JSON object as Result, bytes as raw bytes. An
 * MQTT 5 request's User Properties come back on the reply (ctx.mqtt5 → replyWithProperties).
 */
export const echoModule = defineModule({
  type: 'echo',
  handlers: {
    HD_echo: (_session, payload, ctx) => {
      const userProperties = ctx.mqtt5?.userProperties;
      return userProperties === undefined ? payload : replyWithProperties(payload, { userProperties });
    },
  },
});
