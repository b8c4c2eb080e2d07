import { createHash } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeSession, type SessionData } from '@mqgate/rpc';
import { StorageError, type StorageHandler } from '@mqgate/storage';

/**
 * A StorageHandler of your own, as the README shows: one JSON file per user in `dir`,
 * `{ bytes: base64, expiresAt: ms since epoch }`. Files are named by a hash of the user id
 * (any id is a safe name) and written to a temporary file then renamed (atomic).
 */
export class FileStorage implements StorageHandler {
  private seq = 0;
  constructor(
    private readonly dir: string,
    private readonly ttl = 86_400_000,
  ) {}

  async storage(session: SessionData): Promise<void> {
    await this.guard('storage', session.userId, () => this.write(session.userId, encodeSession(session)));
  }

  async delete(session: SessionData): Promise<void> {
    await this.guard('delete', session.userId, () => rm(this.file(session.userId), { force: true }));
  }

  async query(userId: string): Promise<Uint8Array | null> {
    return this.guard('query', userId, () => this.read(userId));
  }

  async heartbeat(session: SessionData): Promise<void> {
    await this.guard('heartbeat', session.userId, async () => {
      const bytes = (await this.read(session.userId)) ?? encodeSession(session);
      await this.write(session.userId, bytes); // same bytes, new expiry; or stored again
    });
  }

  private file(userId: string): string {
    return join(this.dir, `${createHash('sha256').update(userId).digest('hex')}.json`);
  }

  private async read(userId: string): Promise<Uint8Array | null> {
    const text = await readFile(this.file(userId), 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    if (text === null) return null;
    const { bytes, expiresAt } = JSON.parse(text) as { bytes: string; expiresAt: number };
    return expiresAt > Date.now() ? Buffer.from(bytes, 'base64') : null;
  }

  private async write(userId: string, bytes: Uint8Array): Promise<void> {
    const tmp = `${this.file(userId)}.${process.pid}.${++this.seq}.tmp`;
    const json = JSON.stringify({ bytes: Buffer.from(bytes).toString('base64'), expiresAt: Date.now() + this.ttl });
    await writeFile(tmp, json);
    await rename(tmp, this.file(userId));
  }

  private async guard<T>(op: StorageError['operation'], userId: string, fn: () => Promise<T>): Promise<T> {
    if (!userId) throw new StorageError(op, userId, new Error('userId is empty'));
    try {
      return await fn();
    } catch (err) {
      throw new StorageError(op, userId, err);
    }
  }
}
