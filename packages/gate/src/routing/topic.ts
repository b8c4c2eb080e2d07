import { HANDLER_PREFIX, type Address } from '@mqgate/rpc';
import { clipInput } from '@mqgate/rpc/internal';

/** A parsed request topic `moduleType[@serverId]/HD_handler[/msgid]`. */
export interface Route {
  address: Address;
  handler: string;
  /** Present for a request (a reply goes back on the same topic), absent for a notify. */
  msgid: string | undefined;
}

/** mqant's wording for a topic with fewer than two levels. */
export const TOPIC_FORM_ERROR = 'Topic must be [moduleType@moduleID]/[handler]|[moduleType@moduleID]/[handler]/[msgid]';

/**
 * Parses a request topic (mqant gate/base/mqtt_agent.go). `user/HD_login/7` is a request
 * with msgid `7`; `user/HD_ping` a notify; `user@user-1/HD_x/7` pins the server `user@user-1`.
 * A msgid may itself hold `/` (mqant ignores levels past the third; we keep them so the reply
 * topic equals the request topic). Returns an error message instead of a Route when the
 * topic is not routable.
 */
export function parseTopic(topic: string): Route | string {
  const a = topic.indexOf('/');
  if (a <= 0) return TOPIC_FORM_ERROR;
  const b = topic.indexOf('/', a + 1);
  const handler = b < 0 ? topic.slice(a + 1) : topic.slice(a + 1, b);
  const msgid = b < 0 ? undefined : topic.slice(b + 1);
  if (!handler.startsWith(HANDLER_PREFIX) || handler.length === HANDLER_PREFIX.length) {
    return `Method(${clipInput(handler)}) must begin with '${HANDLER_PREFIX}'`;
  }
  const module = topic.slice(0, a);
  const at = module.indexOf('@');
  let address: Address;
  if (at < 0) address = { moduleType: module };
  else if (at === 0) return TOPIC_FORM_ERROR;
  else if (at === module.length - 1) address = { moduleType: module.slice(0, at) };
  else address = { serverId: module };
  return { address, handler, msgid };
}
