import { optionChecker, RANGES } from '@mqgate/rpc/internal';

/** How client requests run: order and the handler deadline. Part of GateOptions; defaults in {@link ROUTING_DEFAULTS}. */
export interface RoutingOptions {
  /** Run one request at a time per session, in arrival order. Default false (mqant runs them concurrently). */
  ordered?: boolean;
  /** ms a module handler has before the client gets a deadline Error reply. Default 10 000 (mqant's RPCExpired). */
  handlerTimeout?: number;
}

/** {@link RoutingOptions} resolved: every default applied, every value checked. */
export type ResolvedRoutingOptions = Required<RoutingOptions>;

/** The defaults of {@link RoutingOptions}. */
export const ROUTING_DEFAULTS = {
  ordered: false,
  handlerTimeout: 10_000,
} as const;

const check = optionChecker('gate option');

/**
 * Fills in the defaults of {@link RoutingOptions} and checks them.
 * @throws OptionError (code BAD_OPTION, a RangeError) naming the option, its range and the value.
 */
export function resolveRoutingOptions(o: RoutingOptions): ResolvedRoutingOptions {
  const D = ROUTING_DEFAULTS;
  return {
    ordered: o.ordered ?? D.ordered,
    handlerTimeout: check('handlerTimeout', o.handlerTimeout ?? D.handlerTimeout, RANGES.positive),
  };
}
