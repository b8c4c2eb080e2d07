/**
 * NatsTransport.healthy() (read by the gate's /readyz on every probe): true while connected,
 * false while the NATS server is down, true again once the client has reconnected. A NATS
 * server of the test's own, stopped and restarted on its port.
 */
import { NatsTransport } from '@mqgate/nats';
import { silentLogger } from '@mqgate/rpc';
import { startNatsServer, within, type NatsUnderTest } from '@mqgate/test-support';

let own: NatsUnderTest | undefined;
let t: NatsTransport | undefined;
afterAll(async () => {
  await t?.close();
  await own?.stop().catch(() => undefined);
});

/** Resolves once `check()` holds (NATS state changes have no event on the transport). */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  await within(
    (async () => {
      while (!check()) await new Promise((r) => setTimeout(r, 20));
    })(),
    ms,
    what,
  );
}

test('healthy() follows the NATS connection: true, false during an outage, true after it', async () => {
  own = await startNatsServer();
  t = new NatsTransport({ servers: own.url, prefix: `healthy-${process.pid}`, logger: silentLogger });
  await within(t.ready(), 10_000, 'ready');
  expect(t.healthy()).toBe(true);
  await own.stop();
  await until(() => !t!.healthy(), 5000, 'unhealthy while NATS is down');
  await own.restart();
  await until(() => t!.healthy(), 15_000, 'healthy after NATS is back');
  await t.close();
  expect(t.healthy()).toBe(false);
});
