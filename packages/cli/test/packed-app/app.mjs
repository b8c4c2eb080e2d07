// The packed-app scenario (scenario.cjs) with the packages loaded by ESM named imports (Node's
// CommonJS interop for all but @mqgate/sdk, whose `import` condition is its ESM build).
import { createApp, defineModule } from '@mqgate/client';
import { Gate } from '@mqgate/gate';
import { InProcessTransport } from '@mqgate/rpc';
import { MemoryStorage } from '@mqgate/storage';
import { connect } from '@mqgate/sdk';
import mqtt from 'mqtt';
import scenario from './scenario.cjs';

await scenario.run({ createApp, defineModule, Gate, InProcessTransport, MemoryStorage, connect, mqtt, sdkEntry: import.meta.resolve('@mqgate/sdk') });
