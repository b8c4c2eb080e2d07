import type { Logger } from '@mqgate/rpc';

/**
 * Stops a process on SIGTERM / SIGINT (the `mqgate` command and the demo): the first signal
 * logs `stopping` at info and runs `stop`, then exits with code 0, or 1 after logging
 * `stop failed` at error when it rejects. A second signal runs `again` (e.g. the rest of a
 * drain at once, logged at warn) when given, else it is ignored while the stop runs.
 */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>, again?: () => void): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      if (!again) return;
      logger.warn({ signal }, 'second signal: closing the remaining connections now');
      again();
      return;
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
