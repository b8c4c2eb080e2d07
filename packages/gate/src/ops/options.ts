import { optionChecker, RANGES } from '@mqgate/rpc/internal';

/** The ops HTTP server (metrics, health) and the metrics' label cap. Part of GateOptions; defaults in {@link OPS_DEFAULTS}. */
export interface OpsOptions {
  /**
   * Port of the HTTP server with `/metrics` (Prometheus text), `/healthz` and `/readyz`, or
   * `false` for none. Default false (the `mqgate` command and the demo: 9563).
   */
  metricsPort?: number | false;
  /** Interface the metrics server binds. Default: all interfaces. */
  metricsHost?: string;
  /** Handler names counted by name per module in metrics; further ones are counted as `other`. Default 50. */
  metricsHandlerCap?: number;
}

/** {@link OpsOptions} resolved: every default applied, every value checked. */
export type ResolvedOpsOptions = Required<Omit<OpsOptions, 'metricsHost'>> & {
  metricsHost: string | undefined;
};

/** The defaults of {@link OpsOptions}. */
export const OPS_DEFAULTS = {
  metricsPort: false,
  metricsHandlerCap: 50,
} as const;

const check = optionChecker('gate option');

/**
 * Fills in the defaults of {@link OpsOptions} and checks them.
 * @throws OptionError (code BAD_OPTION, a RangeError) naming the option, its range and the value.
 */
export function resolveOpsOptions(o: OpsOptions): ResolvedOpsOptions {
  const D = OPS_DEFAULTS;
  return {
    metricsPort: o.metricsPort === undefined || o.metricsPort === false ? D.metricsPort : check('metricsPort', o.metricsPort, RANGES.port),
    metricsHost: o.metricsHost,
    metricsHandlerCap: check('metricsHandlerCap', o.metricsHandlerCap ?? D.metricsHandlerCap, RANGES.positive),
  };
}
