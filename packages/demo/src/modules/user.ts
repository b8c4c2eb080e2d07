import { defineModule } from '@mqgate/client';
import { requireString } from './validate';

/**
 * `user`: log in (bind the session to a user id), log out, and read or change settings.
 * With a StorageHandler on the gate, settings stored earlier come back at login.
 */
export const userModule = defineModule({
  type: 'user',
  handlers: {
    /** `{"userId"}` → `{"userId","settings"}` */
    HD_login: async (session, payload) => {
      const userId = requireString(payload, 'userId');
      await session.bind(userId);
      return { userId: session.userId, settings: session.settings };
    },
    /**
     * `{"delete"?: boolean}` → `{"userId": ""}`. With `"delete": true` the stored settings
     * are deleted too (an explicit "forget me"); a plain logout keeps them for the next login.
     */
    HD_logout: async (session, payload) => {
      const del = !Buffer.isBuffer(payload) && payload.delete === true;
      await session.unbind({ delete: del });
      return { userId: session.userId };
    },
    /** `{"key","value"}` → `{"settings"}` */
    HD_set: async (session, payload) => {
      const key = requireString(payload, 'key');
      const value = requireString(payload, 'value', true);
      await session.setPush(key, value);
      return { settings: session.settings };
    },
    /** → `{"userId","sessionId","network","ip","settings"}` */
    HD_get: async (session) => ({
      userId: session.userId,
      sessionId: session.sessionId,
      network: session.network,
      ip: session.ip,
      settings: session.settings,
    }),
  },
});
