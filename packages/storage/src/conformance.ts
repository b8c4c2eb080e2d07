import { decodeSession, encodeSession, makeSessionData, type SessionData } from '@mqgate/rpc';
import type { StorageHandler } from './storage-handler';

/** What a {@link StorageHandlerFactory} resolves: the handler, and how to dispose of it. */
export interface StorageHandlerUnderTest {
  handler: StorageHandler;
  /** Called once after the handler's tests (close clients, stop timers, remove files). */
  cleanup?: () => Promise<void>;
}

/**
 * Makes a fresh handler whose entries live `ttl` ms after their last `storage` or
 * `heartbeat`. Called once per group of tests (a few times per suite), with a long ttl and
 * a short one. Handlers may share one store: the suite only uses user ids under a random
 * prefix of its own, and deletes the users it created at the end.
 */
export type StorageHandlerFactory = (opts: { ttl: number }) => Promise<StorageHandlerUnderTest>;

/** Tuning of {@link describeStorageHandler}. */
export interface ConformanceOptions {
  /**
   * ttl, in ms, of the handler for the expiry tests. Default 300. Raise it for a store
   * whose expiry is coarse (e.g. whole seconds); those tests take about 10 × this.
   */
  shortTtl?: number;
  /** ttl, in ms, of the handler for every other test. Default 60_000. */
  longTtl?: number;
}

/**
 * Registers a jest `describe` block, `StorageHandler conformance: <name>`, that checks a
 * {@link StorageHandler} against the contract mqgate's gate relies on. Call it at the top
 * level of a jest test file (it uses jest's globals and adds no runtime dependency):
 *
 * ```ts
 * import { describeStorageHandler } from '@mqgate/storage/conformance';
 * describeStorageHandler('MyStorage', async ({ ttl }) => {
 *   const handler = new MyStorage({ ttl });
 *   return { handler, cleanup: () => handler.close() };
 * });
 * ```
 *
 * It checks: round trip (the bytes returned decode to the stored user id and settings),
 * overwrite (replace, not merge), delete (also of a user with nothing stored), `null` for
 * an unknown user, expiry `ttl` ms after `storage` (polled, bounded), heartbeat extending
 * the expiry and not overwriting what is stored, heartbeat storing the session again when
 * nothing is stored, atomic concurrent writes (50 writers for one user: the result is one
 * of them, whole) and 50 users in parallel, a ~600 KB session of 1,000 settings, binary-safe
 * values (NUL, emoji, lone surrogates, keys with `:` and `{}`; returned bytes equal the
 * stored ones), and user ids with spaces, `:`, `{}`, glob characters, `/`, `..`, unicode,
 * case differences and 300 characters. Takes about 3 s plus 10 × `shortTtl`.
 */
export function describeStorageHandler(name: string, factory: StorageHandlerFactory, options: ConformanceOptions = {}): void {
  const shortTtl = options.shortTtl ?? 300;
  const longTtl = options.longTtl ?? 60_000;
  const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const timedTest = 10 * shortTtl + 10_000;

  describe(`StorageHandler conformance: ${name}`, () => {
    describe(`with ttl ${longTtl} ms`, () => {
      const ctx = setup(factory, longTtl, `${runId}-L`);

      it('storage then query returns bytes that decode to the same user and settings', async () => {
        const userId = ctx.user('roundtrip');
        const session = sessionOf(userId, { room: 'lobby', level: '7', empty: '' });
        await ctx.handler.storage(session);
        const bytes = await ctx.handler.query(userId);
        expect(bytes).toBeInstanceOf(Uint8Array);
        const decoded = decodeSession(bytes as Uint8Array);
        expect(decoded.userId).toBe(userId);
        expect(decoded.settings).toEqual({ room: 'lobby', level: '7', empty: '' });
      });

      it('storage replaces what was stored (no merge)', async () => {
        const userId = ctx.user('overwrite');
        await ctx.handler.storage(sessionOf(userId, { v: '1', onlyInFirst: 'x' }));
        await ctx.handler.storage(sessionOf(userId, { v: '2' }));
        expect(await settingsOf(ctx.handler, userId)).toEqual({ v: '2' });
      });

      it('delete removes the user and only that user', async () => {
        const gone = ctx.user('delete-a');
        const kept = ctx.user('delete-b');
        await ctx.handler.storage(sessionOf(gone, { a: '1' }));
        await ctx.handler.storage(sessionOf(kept, { b: '1' }));
        await ctx.handler.delete(sessionOf(gone, {}));
        expect(await ctx.handler.query(gone)).toBeNull();
        expect(await settingsOf(ctx.handler, kept)).toEqual({ b: '1' });
      });

      it('delete of a user with nothing stored succeeds', async () => {
        const userId = ctx.user('delete-unknown');
        await expect(ctx.handler.delete(sessionOf(userId, { a: '1' }))).resolves.toBeUndefined();
        expect(await ctx.handler.query(userId)).toBeNull();
      });

      it('query of an unknown user resolves null', async () => {
        await expect(ctx.handler.query(ctx.user('unknown'))).resolves.toBeNull();
      });

      it('heartbeat keeps what is stored (does not overwrite it with its own session)', async () => {
        const userId = ctx.user('heartbeat-keeps');
        await ctx.handler.storage(sessionOf(userId, { written: 'by storage' }));
        await ctx.handler.heartbeat(sessionOf(userId, { written: 'by heartbeat' }));
        expect(await settingsOf(ctx.handler, userId)).toEqual({ written: 'by storage' });
      });

      it('heartbeat stores the session again when nothing is stored', async () => {
        const userId = ctx.user('heartbeat-restores');
        await ctx.handler.storage(sessionOf(userId, { v: 'old' }));
        await ctx.handler.delete(sessionOf(userId, {}));
        await ctx.handler.heartbeat(sessionOf(userId, { v: 'live' }));
        expect(await settingsOf(ctx.handler, userId)).toEqual({ v: 'live' });
      });

      it('50 concurrent writes for one user: query returns exactly one of them, whole', async () => {
        const userId = ctx.user('concurrent-one');
        const writes = Array.from({ length: 50 }, (_, i) => {
          const settings: Record<string, string> = { writer: String(i) };
          for (let k = 0; k < 20; k++) settings[`k${k}`] = `${i}:${k}:${'x'.repeat(i * 10)}`;
          return sessionOf(userId, settings);
        });
        await Promise.all(writes.map((s) => ctx.handler.storage(s)));
        const settings = await settingsOf(ctx.handler, userId);
        const writer = Number(settings.writer);
        expect(Number.isInteger(writer) && writer >= 0 && writer < 50).toBe(true);
        expect(settings).toEqual(writes[writer].settings);
      });

      it('50 users in parallel all round trip', async () => {
        const userIds = Array.from({ length: 50 }, (_, i) => ctx.user(`parallel-${i}`));
        await Promise.all(userIds.map((u, i) => ctx.handler.storage(sessionOf(u, { i: String(i), user: u }))));
        const results = await Promise.all(userIds.map((u) => ctx.handler.query(u)));
        results.forEach((bytes, i) => {
          expect(bytes).not.toBeNull();
          const decoded = decodeSession(bytes as Uint8Array);
          expect(decoded.userId).toBe(userIds[i]);
          expect(decoded.settings).toEqual({ i: String(i), user: userIds[i] });
        });
      });

      it('a large session (1,000 settings, ~600 KB) round trips', async () => {
        const userId = ctx.user('large');
        const settings: Record<string, string> = {};
        for (let k = 0; k < 1000; k++) settings[`key-${k}`] = `${k}:`.padEnd(600, String.fromCharCode(97 + (k % 26)));
        const session = sessionOf(userId, settings);
        await ctx.handler.storage(session);
        const bytes = await ctx.handler.query(userId);
        expect(bytes).not.toBeNull();
        expect((bytes as Uint8Array).byteLength).toBe(encodeSession(session).byteLength);
        expect((bytes as Uint8Array).byteLength).toBeGreaterThan(600_000);
        expect(decodeSession(bytes as Uint8Array).settings).toEqual(settings);
      });

      it('values and keys are binary safe: the bytes come back unchanged', async () => {
        const userId = ctx.user('binary');
        const settings: Record<string, string> = {
          nul: 'a\u0000b\u0000',
          '\u0000key': 'NUL in the key',
          emoji: '😀👍🏽🇯🇵',
          cjk: '会话设置',
          latin1: 'Ã©Ã¿\u00ff\u00fe\u0080',
          replacementChar: '\uFFFD',
          loneHighSurrogate: 'x\uD800y',
          loneLowSurrogate: '\uDC00',
          controls: '\r\n\t\u0001\u001b[0m\u007f',
          'a:b:c': 'colons in the key',
          '{tag}': 'braces in the key',
          '{}': '',
          '*?[]': 'glob characters',
          json: '{"a":[1,2,{"b":null}]}',
          base64ish: 'AAECAwQF/+7dzA==',
        };
        const session = sessionOf(userId, settings);
        await ctx.handler.storage(session);
        const bytes = await ctx.handler.query(userId);
        expect(bytes).not.toBeNull();
        expect(Buffer.from(bytes as Uint8Array).equals(Buffer.from(encodeSession(session)))).toBe(true);
        // Compared with the codec's own round trip: protobuf strings are UTF-8, so lone
        // surrogates come back as U+FFFD whatever the store does.
        expect(decodeSession(bytes as Uint8Array).settings).toEqual(decodeSession(encodeSession(session)).settings);
        expect(decodeSession(bytes as Uint8Array).settings.nul).toBe('a\u0000b\u0000');
      });

      it('user ids with unusual characters are distinct keys that round trip', async () => {
        const labels = [
          'with spaces',
          'with spaces ',
          'a:b:c',
          '{slot}:x',
          '{}',
          '*',
          '?[a-z]*',
          'ユーザー',
          '😀',
          'tab\tnew\nline',
          '../../etc/passwd',
          'a/b\\c',
          '%2F%00',
          'quote\'"`',
          'Case',
          'case',
          'CASE',
          'long-'.padEnd(300, 'x'),
        ];
        // One base for all, so ids that differ only by case or a trailing space must stay apart.
        const base = ctx.user('ids/');
        const userIds = labels.map((label) => ctx.track(base + label));
        await Promise.all(userIds.map((u, i) => ctx.handler.storage(sessionOf(u, { label: labels[i] }))));
        for (const [i, u] of userIds.entries()) {
          const bytes = await ctx.handler.query(u);
          expect(bytes).not.toBeNull();
          const decoded = decodeSession(bytes as Uint8Array);
          expect(decoded.userId).toBe(u);
          expect(decoded.settings).toEqual({ label: labels[i] });
        }
        await ctx.handler.delete(sessionOf(userIds[0], {}));
        expect(await ctx.handler.query(userIds[0])).toBeNull();
        expect(await settingsOf(ctx.handler, userIds[1])).toEqual({ label: labels[1] });
      });
    });

    describe(`with ttl ${shortTtl} ms`, () => {
      const ctx = setup(factory, shortTtl, `${runId}-S`);

      it(
        'a stored session is gone once ttl has passed',
        async () => {
          const userId = ctx.user('expiry');
          const started = Date.now();
          await ctx.handler.storage(sessionOf(userId, { v: '1' }));
          expect(await settingsOf(ctx.handler, userId)).toEqual({ v: '1' });
          const goneAfter = await msUntilGone(ctx.handler, userId, started, 5 * shortTtl + 2000);
          expect(goneAfter).toBeGreaterThanOrEqual(shortTtl - 25);
          expect(goneAfter).toBeLessThanOrEqual(5 * shortTtl + 2000);
        },
        timedTest,
      );

      it(
        'heartbeat every ttl/3 keeps it alive past 2 × ttl; it expires once heartbeats stop',
        async () => {
          const userId = ctx.user('heartbeat-extends');
          await ctx.handler.storage(sessionOf(userId, { v: 'kept' }));
          const until = Date.now() + 2.5 * shortTtl;
          while (Date.now() < until) {
            await sleep(shortTtl / 3);
            await ctx.handler.heartbeat(sessionOf(userId, { v: 'from heartbeat' }));
          }
          expect(await settingsOf(ctx.handler, userId)).toEqual({ v: 'kept' });
          const lastBeat = Date.now();
          const goneAfter = await msUntilGone(ctx.handler, userId, lastBeat, 5 * shortTtl + 2000);
          expect(goneAfter).toBeLessThanOrEqual(5 * shortTtl + 2000);
        },
        timedTest,
      );

      it(
        'a session stored again by heartbeat expires too',
        async () => {
          const userId = ctx.user('heartbeat-restore-expires');
          const started = Date.now();
          await ctx.handler.heartbeat(sessionOf(userId, { v: 'restored' }));
          expect(await settingsOf(ctx.handler, userId)).toEqual({ v: 'restored' });
          const goneAfter = await msUntilGone(ctx.handler, userId, started, 5 * shortTtl + 2000);
          expect(goneAfter).toBeGreaterThanOrEqual(shortTtl - 25);
          expect(goneAfter).toBeLessThanOrEqual(5 * shortTtl + 2000);
        },
        timedTest,
      );

      it(
        'storage restarts the expiry',
        async () => {
          const userId = ctx.user('storage-restarts');
          await ctx.handler.storage(sessionOf(userId, { v: '1' }));
          await sleep(shortTtl * 0.6);
          await ctx.handler.storage(sessionOf(userId, { v: '2' }));
          await sleep(shortTtl * 0.6);
          expect(await settingsOf(ctx.handler, userId)).toEqual({ v: '2' });
        },
        timedTest,
      );
    });
  });
}

interface Context {
  readonly handler: StorageHandler;
  /** A user id unique to this run and label; deleted after the group's tests. */
  user(label: string): string;
  /** Deletes `userId` after the group's tests; returns it. */
  track(userId: string): string;
}

/** beforeAll/afterAll of one group: one handler, the users it created deleted at the end. */
function setup(factory: StorageHandlerFactory, ttl: number, prefix: string): Context {
  let made: StorageHandlerUnderTest | undefined;
  const users = new Set<string>();
  let n = 0;
  beforeAll(async () => {
    made = await factory({ ttl });
  });
  afterAll(async () => {
    if (!made) return;
    const { handler, cleanup } = made;
    await Promise.allSettled([...users].map((userId) => handler.delete(sessionOf(userId, {}))));
    await cleanup?.();
  });
  return {
    get handler(): StorageHandler {
      if (!made) throw new Error('the StorageHandler factory did not resolve');
      return made.handler;
    },
    user(label: string): string {
      return this.track(`conformance/${prefix}/${++n}/${label}`);
    },
    track(userId: string): string {
      users.add(userId);
      return userId;
    },
  };
}

function sessionOf(userId: string, settings: Record<string, string>): SessionData {
  return makeSessionData({
    userId,
    settings,
    ip: '203.0.113.7',
    network: 'tcp',
    sessionId: `s-${Math.random().toString(36).slice(2)}`,
    serverId: 'gate@conformance',
  });
}

async function settingsOf(handler: StorageHandler, userId: string): Promise<Readonly<Record<string, string>>> {
  const bytes = await handler.query(userId);
  if (bytes === null) throw new Error(`query(${JSON.stringify(userId)}) resolved null; a stored session was expected`);
  const decoded = decodeSession(bytes);
  expect(decoded.userId).toBe(userId);
  return decoded.settings;
}

/**
 * Polls `query` every 20 ms until it resolves null; resolves the ms from `since` to the
 * first null. Rejects when still there after `limit` ms.
 */
async function msUntilGone(handler: StorageHandler, userId: string, since: number, limit: number): Promise<number> {
  for (;;) {
    const bytes = await handler.query(userId);
    const elapsed = Date.now() - since;
    if (bytes === null) return elapsed;
    if (elapsed > limit) throw new Error(`${JSON.stringify(userId)} is still stored ${elapsed} ms later; expected it to expire`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
