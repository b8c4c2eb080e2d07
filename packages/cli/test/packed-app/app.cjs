// The packed-app scenario (scenario.cjs) with the packages loaded by require().
'use strict';
const { createApp, defineModule } = require('@mqgate/client');
const { Gate } = require('@mqgate/gate');
const { InProcessTransport } = require('@mqgate/rpc');
const { MemoryStorage } = require('@mqgate/storage');
const { connect } = require('@mqgate/sdk');
const mqtt = require('mqtt');
const { run } = require('./scenario.cjs');

run({ createApp, defineModule, Gate, InProcessTransport, MemoryStorage, connect, mqtt, sdkEntry: require.resolve('@mqgate/sdk') }).catch((err) => {
  console.error(err);
  process.exit(1);
});
