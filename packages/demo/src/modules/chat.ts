import { defineModule } from '@mqgate/client';
import { requireString } from './validate';

/** Topic chat messages are pushed on. */
export const CHAT_TOPIC = 'chat/onMessage';
/** Topic whispers (to one user, on whatever gate) are pushed on. */
export const WHISPER_TOPIC = 'chat/onWhisper';

/**
 * `chat`:
 * - `HD_say {"text"}` pushes `{"from","text"}` on chat/onMessage to every session on the
 *   sender's gate → `{"delivered"}`;
 * - `HD_shout {"text"}` the same on every gate of the app → `{"delivered"}`;
 * - `HD_whisper {"to","text"}` pushes `{"from","text"}` on chat/onWhisper to every session of
 *   user `to`, on whatever gate → `{"delivered"}`.
 */
export const chatModule = defineModule({
  type: 'chat',
  handlers: {
    HD_say: async (session, payload) => {
      const text = requireString(payload, 'text');
      const from = session.isGuest() ? session.sessionId : session.userId;
      const delivered = await session.broadcast(CHAT_TOPIC, { from, text });
      return { delivered };
    },
    HD_shout: async (session, payload, ctx) => {
      const text = requireString(payload, 'text');
      const from = session.isGuest() ? session.sessionId : session.userId;
      return { delivered: await ctx.users.broadcast(CHAT_TOPIC, { from, text }) };
    },
    HD_whisper: async (session, payload, ctx) => {
      const to = requireString(payload, 'to');
      const text = requireString(payload, 'text');
      const from = session.isGuest() ? session.sessionId : session.userId;
      return { delivered: await ctx.users.sendToUser(to, WHISPER_TOPIC, { from, text }) };
    },
  },
});
