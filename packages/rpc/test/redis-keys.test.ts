import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bansKey,
  DEFAULT_KEY_PREFIX,
  KEY_SCHEMA,
  registryKeys,
  replyChannel,
  rpcListKeys,
  sessionKey,
  sessionPrefix,
  userKey,
} from '@mqgate/rpc/redis';
import { detachedKey } from '@mqgate/rpc/internal';

const PAGE = join(__dirname, '..', '..', '..', 'docs', 'reference', 'redis-keys.md');

/** The rows of docs/reference/redis-keys.md's key table: key pattern and type. */
function pageRows(): Array<{ pattern: string; type: string }> {
  const text = readFileSync(PAGE, 'utf8');
  const start = text.indexOf('| key / channel |');
  if (start < 0) throw new Error('docs/reference/redis-keys.md has no "| key / channel |" table');
  const section = text.slice(start).split('\n').slice(1);
  const end = section.findIndex((line) => !line.startsWith('|'));
  const rows: Array<{ pattern: string; type: string }> = [];
  for (const line of end < 0 ? section : section.slice(0, end)) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    if (cells.length < 4 || !cells[1].startsWith('`')) continue; // not a row with a key
    rows.push({ pattern: cells[1].replace(/^`|`$/g, ''), type: cells[2] });
  }
  return rows;
}

describe('the Redis key schema (keys.ts)', () => {
  it("docs/reference/redis-keys.md's table lists exactly the keys and channels of KEY_SCHEMA, with their types, and the detached sessions' key", () => {
    const rows = KEY_SCHEMA.map(({ pattern, type }) => ({ pattern, type }));
    // The user index keeps a user's detached sessions (resume) under userKey(detachedKey(userId)), right after the bound ones.
    const detached = userKey(DEFAULT_KEY_PREFIX, detachedKey('<userId>')).split('\u0000').join('\\0'); // the page writes the NUL bytes as \0
    rows.splice(rows.findIndex((r) => r.pattern === userKey(DEFAULT_KEY_PREFIX, '<userId>')) + 1, 0, { pattern: detached, type: 'hash' });
    expect(pageRows()).toEqual(rows);
  });

  it('builds every name from the prefix', () => {
    expect(DEFAULT_KEY_PREFIX).toBe('mqgate:');
    expect(rpcListKeys('p:', 'chat', 'chat@1')).toEqual({ type: 'p:rpc:{chat}:type', server: 'p:rpc:{chat}:server:chat@1' });
    expect(replyChannel('p:', 'ab12')).toBe('p:rpc:reply:ab12');
    expect(registryKeys('p:')).toEqual({
      servers: 'p:{registry}:servers',
      info: 'p:{registry}:info',
      events: 'p:registry:events',
      heartbeat: 'p:registry:heartbeat',
    });
    expect(userKey('p:', 'u1')).toBe('p:user:{u1}');
    expect(bansKey('p:')).toBe('p:{bans}');
    expect(sessionPrefix('p:')).toBe('p:session:');
    expect(sessionKey(sessionPrefix('p:'), 'u1')).toBe('p:session:u1');
  });
});
