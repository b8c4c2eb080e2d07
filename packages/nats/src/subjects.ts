/**
 * Every subject NatsTransport uses, under `<prefix>` (default `mqgate`):
 * - `<prefix>.rpc.type.<type>`: calls to a module type; every server of the type subscribes in
 *   queue group `<type>` (competing consumers: NATS hands each request to one member);
 * - `<prefix>.rpc.srv.<serverId>`: calls to one server (a `type@id` address or a sticky key);
 * - `<prefix>.reg.ev`: registry events (join, heartbeat, busy, free, leave; JSON);
 * - `<prefix>.reg.who`: discovery: every server answers a request here with its entry;
 * - `<prefix>.reply.<transportId>.<n>`: replies to one transport's call number n.
 * Ids and types are encoded into one subject token ({@link token}).
 */
export interface Subjects {
  type(moduleType: string): string;
  server(serverId: string): string;
  events: string;
  who: string;
  /** Prefix of one transport's reply subjects (`.<n>` follows). */
  replies(transportId: string): string;
}

export function subjects(prefix: string): Subjects {
  return {
    type: (t) => `${prefix}.rpc.type.${token(t)}`,
    server: (id) => `${prefix}.rpc.srv.${token(id)}`,
    events: `${prefix}.reg.ev`,
    who: `${prefix}.reg.who`,
    replies: (id) => `${prefix}.reply.${id}`,
  };
}

/** One subject token for any string: percent-encoding, with `.`, `*`, `>`, `%` and whitespace escaped too (`user@user-1` stays as is). */
export function token(s: string): string {
  return encodeURIComponent(s).replace(/[.*>!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`) || '%00';
}

/** Header carrying a request's absolute deadline, epoch ms (decimal). */
export const DEADLINE_HEADER = 'Mqgate-Deadline';

/** Header marking a liveness probe (liveness.ts) on a server's own subject: servers ignore such a message. */
export const PROBE_HEADER = 'Mqgate-Probe';
