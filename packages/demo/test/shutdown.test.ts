import { connect, nextMessage, ok } from './helpers/client';
import { startDemo } from './helpers/demo-process';

test('SIGTERM stops the demo gracefully: clients are told why, the process exits 0', async () => {
  const demo = await startDemo();
  try {
    const c = await connect(demo.tcpUrl);
    await ok(c, 'user/HD_login', { userId: 'dave' });
    const kick = nextMessage(c, 'gate/kick');
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    const code = demo.stop('SIGTERM');
    expect(JSON.parse((await kick).toString())).toEqual({ reason: 'server shutting down' });
    await closed;
    expect(await code).toBe(0);
    c.end(true);
  } finally {
    await demo.kill();
  }
});
