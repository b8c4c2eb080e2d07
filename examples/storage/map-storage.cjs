// A StorageHandler of your own for `mqgate gate`: `storage: { module: ./storage/map-storage.cjs }`
// (or MQGATE_STORAGE_MODULE). The file default-exports a factory the command calls once with
// `{ ttl, logger }`; this one keeps sessions in a Map with an expiry, the shape of any store
// (SQL, DynamoDB, files...). Run it through @mqgate/storage/conformance before production.
const { encodeSession } = require('@mqgate/rpc');

module.exports = function mapStorage({ ttl, logger }) {
  const data = new Map(); // userId -> { bytes, expiresAt }
  const live = (userId) => {
    const e = data.get(userId);
    return e && e.expiresAt > Date.now() ? e : undefined;
  };
  logger.info({ ttl }, 'map storage ready');
  return {
    async storage(session) {
      data.set(session.userId, { bytes: encodeSession(session), expiresAt: Date.now() + ttl });
    },
    async delete(session) {
      data.delete(session.userId);
    },
    async query(userId) {
      return live(userId)?.bytes ?? null;
    },
    async heartbeat(session) {
      const e = live(session.userId);
      if (e) e.expiresAt = Date.now() + ttl;
      else await this.storage(session);
    },
    close() {
      data.clear();
    },
  };
};
