import type { Gate } from '@mqgate/gate';
import { RecordingPeer, type Envelope } from './peer';

/** The `gate/session` push a bind or a resume sends. */
export interface TokenPush {
  token: string;
  sessionId: string;
  userId: string;
  expiresAt: number;
}

/** An MQTT.js peer that logs in through a `user/HD_login` module, resumes, and drops its connection. */
export class ResumePeer extends RecordingPeer {
  private seq = 0;
  login(userId: string): Promise<Envelope> {
    return this.request(`user/HD_login/${++this.seq}`, JSON.stringify({ userId }));
  }
  resume(token: string): Promise<Envelope> {
    return this.request(`gate/HD_resume/${++this.seq}`, JSON.stringify({ token }));
  }
  /** The n-th (0-based) `gate/session` push. */
  async tokenPush(n = 0): Promise<TokenPush> {
    let seen = 0;
    const m = await this.next((x) => x.topic === 'gate/session' && seen++ >= n);
    return JSON.parse(m.payload.toString()) as TokenPush;
  }
  /** The first `gate/session` push's token. */
  async token(): Promise<string> {
    return (await this.tokenPush()).token;
  }
  /** Drops the TCP connection without a DISCONNECT (a network loss). */
  drop(): Promise<void> {
    this.client.stream.destroy();
    return this.closed;
  }
}

/**
 * Logs `userId` in with `c` (a fresh peer on `g`), drops its connection, and resolves once
 * `g` holds the session detached, with the session's id and resume token.
 */
export async function loginAndDrop(g: Gate, c: ResumePeer, userId: string): Promise<{ token: string; sessionId: string }> {
  const sessionId = ((await c.login(userId)).Result as { sessionId: string }).sessionId;
  const token = await c.token();
  const gone = new Promise<void>((resolve) => g.on('disconnect', (s) => s.sessionId === sessionId && resolve()));
  await c.drop();
  await gone;
  return { token, sessionId };
}
