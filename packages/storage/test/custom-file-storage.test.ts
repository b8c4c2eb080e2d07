import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeSessionData } from '@mqgate/rpc';
import { StorageError } from '@mqgate/storage';
import { describeStorageHandler } from '@mqgate/storage/conformance';
import { FileStorage } from './custom-file-storage';

// The conformance suite run against a StorageHandler written outside this package, the way
// a user would test their own.
describeStorageHandler('FileStorage (a custom StorageHandler)', async ({ ttl }) => {
  const dir = await mkdtemp(join(tmpdir(), 'mqgate-file-storage-'));
  return { handler: new FileStorage(dir, ttl), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('FileStorage', () => {
  it('writes one file per user and no temporary files are left behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mqgate-file-storage-'));
    try {
      const store = new FileStorage(dir);
      await Promise.all([1, 2, 3].map((n) => store.storage(makeSessionData({ userId: `u${n}` }))));
      await store.storage(makeSessionData({ userId: 'u1', settings: { again: 'yes' } }));
      const files = await readdir(dir);
      expect(files).toHaveLength(3);
      expect(files.every((f) => /^[0-9a-f]{64}\.json$/.test(f))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports a failing store with a StorageError naming the operation and user', async () => {
    const store = new FileStorage(join(tmpdir(), 'mqgate-no-such-dir', String(Date.now())));
    const err = await store.storage(makeSessionData({ userId: 'u1' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toMatch(/^storage\("u1"\) failed: ENOENT/);
  });
});
