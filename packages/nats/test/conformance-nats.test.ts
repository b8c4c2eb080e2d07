import { NatsTransport } from '@mqgate/nats';
import { describeRpcTransport } from '@mqgate/rpc/conformance';
import { getNats, type NatsUnderTest } from '@mqgate/test-support';
import { randomBytes } from 'node:crypto';

let nats: NatsUnderTest;
beforeAll(async () => {
  nats = await getNats();
});
afterAll(async () => {
  if (nats?.owned) await nats.stop();
});

describeRpcTransport('NatsTransport', async () => {
  const prefix = `mqgate-test.${randomBytes(4).toString('hex')}`;
  return { make: (o) => new NatsTransport({ servers: nats.url, prefix, ...o }) };
});
