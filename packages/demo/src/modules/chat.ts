import { defineModule } from '@mqgate/client';
import { requireString } from './validate';

/** Topic chat messages are pushed on. */
export const CHAT_TOPIC = 'chat/onMessage';
/** Topic whispers (to one user, on whatever gate) are pushed on. */
export const WHISPER_TOPIC = 'chat/onWhisper';
/** Topic a login announced with `HD_join` is pushed on, to every session of the app. */
export const JOIN_TOPIC = 'chat/onJoin';
/** Most user ids one `HD_who` asks about (each is an index lookup on every gate). */
export const MAX_WHO = 100;

/**
 * `chat`:
 * - `HD_say {"text"}` pushes `{"from","text"}` on chat/onMessage to every session on the
 *   sender's gate → `{"delivered"}`;
 * - `HD_shout {"text"}` the same on every gate of the app → `{"delivered"}`;
 * - `HD_whisper {"to","text"}` pushes `{"from","text"}` on chat/onWhisper to every session of
 *   user `to`, on whatever gate → `{"delivered"}`;
 * - `HD_join {}` (logged in only) pushes `{"from"}` on chat/onJoin to every session on every
 *   gate, so pages learn who is there → `{"delivered"}`;
 * - `HD_who {"userIds": string[]}` (at most {@link MAX_WHO}) → `{"online": string[]}`: those
 *   of them connected to any gate, in the order asked.
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
    HD_join: async (session, _payload, ctx) => {
      if (session.isGuest()) throw new Error('log in before joining');
      return { delivered: await ctx.users.broadcast(JOIN_TOPIC, { from: session.userId }) };
    },
    HD_who: async (_session, payload, ctx) => {
      const ids = Buffer.isBuffer(payload) ? undefined : (payload as { userIds?: unknown }).userIds;
      if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) throw new Error('the request body must be {"userIds": [string, ...]}');
      if (ids.length > MAX_WHO) throw new Error(`"userIds" holds ${ids.length} ids, at most ${MAX_WHO}`);
      const unique = [...new Set(ids as string[])];
      const online = await Promise.all(unique.map((id) => ctx.users.isConnect(id)));
      return { online: unique.filter((_, i) => online[i]) };
    },
  },
});
