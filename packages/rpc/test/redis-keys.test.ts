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

const README = join(__dirname, '..', '..', '..', 'README.md');

/** The rows of README.md's table under `### Redis keys and channels`: key pattern and type. */
function readmeRows(): Array<{ pattern: string; type: string }> {
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf('### Redis keys and channels');
  if (start < 0) throw new Error('README.md has no "### Redis keys and channels" section');
  const section = text.slice(start).split('\n').slice(1);
  const end = section.findIndex((line) => /^#{1,3} /.test(line));
  const rows: Array<{ pattern: string; type: string }> = [];
  for (const line of end < 0 ? section : section.slice(0, end)) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    if (cells.length < 4 || !cells[1].startsWith('`')) continue; // not a row with a key
    rows.push({ pattern: cells[1].replace(/^`|`$/g, ''), type: cells[2] });
  }
  return rows;
}

describe('the Redis key schema (keys.ts)', () => {
  it("README.md's table lists exactly the keys and channels of KEY_SCHEMA, with their types", () => {
    expect(readmeRows()).toEqual(KEY_SCHEMA.map(({ pattern, type }) => ({ pattern, type })));
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
