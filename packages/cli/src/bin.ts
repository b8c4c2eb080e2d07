#!/usr/bin/env node
import { Command } from 'commander';
import { ConfigError, loadConfig, printConfig, requireFor } from './config';
import { warnUnknownVariables } from './environment';
import { envName, FIELDS } from './schema';
import { runGate, runModules } from './run';

/**
 * `mqgate gate --config FILE` / `mqgate modules --config FILE`, each with `--check` (validate
 * only) and `--print-config` (effective config, secrets masked). Exit codes: 0 ok, 1 failed
 * to start, 2 bad config.
 */
function command(name: 'gate' | 'modules', description: string, run: (c: ReturnType<typeof loadConfig>) => Promise<void>): Command {
  return new Command(name)
    .description(description)
    .option('-c, --config <file>', 'YAML or JSON config file (MQGATE_* environment variables override it)')
    .option('--check', 'validate the config and exit')
    .option('--print-config', 'print the effective config (defaults filled in, secrets masked) and exit')
    .action(async (opts: { config?: string; check?: boolean; printConfig?: boolean }) => {
      warnUnknownVariables(
        `mqgate ${name}`,
        process.env,
        FIELDS.map((f) => envName(f.key)),
      );
      let config;
      try {
        config = loadConfig(opts.config);
        requireFor(config, name);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        console.error(`mqgate ${name}: invalid config: ${err.message}`);
        process.exit(2);
      }
      if (opts.printConfig) {
        process.stdout.write(printConfig(config));
        return;
      }
      if (opts.check) {
        console.log(`mqgate ${name}: config ok`);
        return;
      }
      try {
        await run(config);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        console.error(`mqgate ${name} failed to start: ${message}`);
        process.exit(err instanceof ConfigError ? 2 : 1);
      }
    });
}

const program = new Command('mqgate')
  .description('mqgate: an MQTT gate for Node.js (mqant-compatible)')
  .addCommand(command('gate', 'run a gate: listeners, sessions, routing to modules over the transport', runGate))
  .addCommand(command('modules', 'serve module files (default-exporting defineModule(...)) over the transport', runModules));

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
