import { createApp, type App } from '@mqgate/client';
import { Gate, type GateOptions } from '@mqgate/gate';
import type { Logger } from '@mqgate/rpc';
import { chatModule } from './modules/chat';
import { echoModule } from './modules/echo';
import { userModule } from './modules/user';

export interface DemoApp {
  app: App;
  gate: Gate;
}

/**
 * The demo: the user, chat and echo modules and a gate, in one process. Modules are added
 * first and the gate last, so on stop the gate stops first (no new requests, in-flight
 * ones finish) and the modules after it.
 */
export function createDemoApp(gateOptions: GateOptions, logger?: Logger): DemoApp {
  const app = createApp({ logger });
  app.module(userModule).module(chatModule).module(echoModule);
  const gate = new Gate(gateOptions);
  app.use(gate);
  return { app, gate };
}
