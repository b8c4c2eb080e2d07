import { InProcessTransport, MemoryUserIndex, type RpcTransport } from '@mqgate/rpc';
import { describeRpcTransport, describeUserIndex } from '@mqgate/rpc/conformance';

describeRpcTransport('InProcessTransport', async () => {
  let shared: RpcTransport | undefined;
  return { make: (o) => (shared ??= new InProcessTransport(o)) };
});

describeUserIndex('MemoryUserIndex', async () => {
  const index = new MemoryUserIndex();
  return { index, other: index };
});
