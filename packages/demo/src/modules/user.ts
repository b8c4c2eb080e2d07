import { defineModule } from '@mqgate/client';
import { requireString } from './validate';

/** The Error of `user/HD_login` when the gate checks JWTs: the user comes from the token. */
export const LOGIN_REFUSED = 'JWT_REQUIRED: the user comes from the token given at CONNECT; user/HD_login is off';

/**
 * `user`: log in (bind the session to a user id), log out, and read or change settings.
 * With a StorageHandler on the gate, settings stored earlier come back at login.
 * With `{ jwt: true }` (the gate checks JWTs at CONNECT) `HD_login` is refused with
 * {@link LOGIN_REFUSED}: without it, the login trusts whatever userId a client sends.
 */
export function createUserModule(options: { jwt?: boolean } = {}) {
  return defineModule({
    type: 'user',
    handlers: {
      /**
       * `{"userId"}` → `{"userId","settings"}`, plus `"warning"` when the login was made but
       * the session store failed (`STORAGE_UNAVAILABLE: …`: stored settings come back once it is).
       */
      HD_login: async (session, payload) => {
        if (options.jwt) throw new Error(LOGIN_REFUSED);
        const userId = requireString(payload, 'userId');
        const { warning } = await session.bind(userId);
        return { userId: session.userId, settings: session.settings, ...(warning !== undefined && { warning }) };
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
      /** `{"userId"}` → `{"userId","online"}`: is that user connected to any gate. */
      HD_online: async (_session, payload, ctx) => {
        const userId = requireString(payload, 'userId');
        return { userId, online: await ctx.users.isConnect(userId) };
      },
      /**
       * `{"userId","reason"}` → `{"kicked": n}`: closes every session of that user on every gate
       * (the client gets gate/kick with the reason). A demo has no admin rights: only a
       * logged-in user may kick, and only themselves.
       */
      HD_kick: async (session, payload, ctx) => {
        const userId = requireString(payload, 'userId');
        const reason = requireString(payload, 'reason');
        if (session.isGuest() || session.userId !== userId) throw new Error('log in as that user to kick their sessions');
        return { kicked: await ctx.users.kickUser(userId, reason) };
      },
      /** → `{"total":{total,bound,guests},"gates":{serverId: counts}}` */
      HD_count: async (_session, _payload, ctx) => ctx.users.counts(),
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
}

/** The user module without JWT: `HD_login` binds any userId. */
export const userModule = createUserModule();
