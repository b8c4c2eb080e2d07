import { defineModule } from '@mqgate/client';
import { requireString } from './validate';

/** Topic chat messages are pushed on. */
export const CHAT_TOPIC = 'chat/onMessage';

/** `chat`: `HD_say {"text"}` pushes `{"from","text"}` on chat/onMessage to every session on the gate. */
export const chatModule = defineModule({
  type: 'chat',
  handlers: {
    HD_say: async (session, payload) => {
      const text = requireString(payload, 'text');
      const from = session.isGuest() ? session.sessionId : session.userId;
      const delivered = await session.broadcast(CHAT_TOPIC, { from, text });
      return { delivered };
    },
  },
});
