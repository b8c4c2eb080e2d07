import { defineModule } from '@mqgate/client';

/** `echo`: `HD_echo` returns what it got: a JSON object as Result, bytes as raw bytes. */
export const echoModule = defineModule({
  type: 'echo',
  handlers: {
    HD_echo: (_session, payload) => payload,
  },
});
