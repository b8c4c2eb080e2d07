import type { IPublishPacket } from 'mqtt-packet';
import { GATE_MODULE_TYPE, gateClient, silentLogger, type AppContext, type Logger, type RpcTransport } from '@mqgate/rpc';
import { gateCallTimeout, liveGatesOf } from '@mqgate/rpc/internal';
import type { GateMetrics } from './ops/metrics';
import type { ResolvedGateOptions } from './options';
import { JwtConnect } from './jwt/connect';
import { RequestScheduler, type RunRequest } from './routing/scheduler';
import { FAILED_REQUEST_LOG_INTERVAL, Router } from './routing/router';
import type { GateSession } from './session/session';
import type { SessionLimits } from './session/limits';
import type { GateEvents } from './gate-events';
import { SessionManager, type UserIndexLink } from './session/manager';
import { SessionPersistence } from './persistence/persistence';
import { ResumeManager, isResumeTopic } from './resume/manager';
import type { SessionRegistry } from './session/registry';
import { createWarnLog, type WarnLog } from './ops/warn-log';

/**
 * What a started gate works with, built once at `start(ctx)` with every dependency known
 * (the transport, the logger, the user index), and never changed afterwards.
 */
export interface GateRuntime {
  readonly transport: RpcTransport;
  readonly logger: Logger;
  /** Rate-limited warn lines per kind (slow consumers, limit hits, EMFILE, stalls): see ops/warn-log.ts. */
  readonly warn: WarnLog;
  readonly sessions: SessionManager;
  readonly persistence: SessionPersistence | undefined;
  readonly router: Router;
  readonly scheduler: RequestScheduler;
  /** Present with the `jwt` option: token checks at CONNECT, expiry, `gate/HD_refresh`. */
  readonly jwt: JwtConnect | undefined;
  /** Detached sessions and `gate/HD_resume`. */
  readonly resume: ResumeManager;
}

/** What {@link buildRuntime} needs from the gate. */
export interface RuntimeDeps {
  readonly options: ResolvedGateOptions;
  readonly ctx: AppContext;
  readonly serverId: string;
  readonly registry: SessionRegistry;
  readonly metrics: GateMetrics | undefined;
  /** The gate's emit of its session events and `storageError` (listener exceptions caught). */
  readonly emit: <E extends keyof GateEvents>(event: E, ...args: GateEvents[E]) => void;
  /** True when a user id is banned (admission/tables.ts): Bind refuses it. */
  readonly userBanned?: (userId: string) => boolean;
}

/**
 * Builds the runtime once, at `start(ctx)`, with every dependency known: the logger (the
 * gate's option, else the app's), the StorageHandler behind persistence, the user index
 * (the gate's option, else the app's) and its duplicate-login policy, the session manager,
 * the router and the request scheduler.
 */
export function buildRuntime(deps: RuntimeDeps): GateRuntime {
  const { options: o, ctx, serverId, registry, metrics: m, emit } = deps;
  const transport = ctx.transport;
  const logger = o.logger ?? ctx.logger ?? silentLogger;
  const limits: SessionLimits = {
    maxUserIdBytes: o.maxUserIdBytes,
    maxSettings: o.maxSettings,
    maxSettingKeyBytes: o.maxSettingKeyBytes,
    maxSettingValueBytes: o.maxSettingValueBytes,
    maxSettingsBytes: o.maxSettingsBytes,
  };
  let persistence: SessionPersistence | undefined;
  if (o.storage) {
    persistence = new SessionPersistence(
      m ? m.observeStorage(o.storage) : o.storage,
      {
        heartbeatInterval: o.heartbeatInterval,
        retryInitialDelay: o.storageRetryDelay,
        retryMaxDelay: o.storageRetryMaxDelay,
        limits,
        resumeWindow: o.resumeWindow,
      },
      () => logger,
    );
    persistence.on('storageError', (f) => emit('storageError', f));
  }
  const users: UserIndexLink = {
    index: o.userIndex ?? ctx.userIndex,
    policy: o.duplicateLogin,
    liveGates: () => {
      const gates = liveGatesOf(transport.servers(GATE_MODULE_TYPE));
      return gates.some((g) => g.serverId === serverId) ? gates : [...gates, { serverId, startedAt: 0 }];
    },
    // Bounded: a crashed gate the registry still lists must not hold the new bind past its deadline.
    kickRemote: (loc, reason) =>
      gateClient(transport, loc.serverId, { timeout: gateCallTimeout(transport) })
        .close(loc.sessionId, reason)
        .catch(() => undefined),
  };
  const warn = createWarnLog(logger);
  const sessions = new SessionManager({
    warn,
    userIndexCheckInterval: o.userIndexCheckInterval,
    registry,
    users,
    persistence,
    deleteOnUnbind: o.deleteOnUnbind,
    logger,
    limits,
    userBanned: deps.userBanned,
    emit: (event, ...args) => {
      // A bind issues a resume token, an unbind voids it.
      const s = event === 'bind' || event === 'unbind' ? registry.get((args[0] as { sessionId: string }).sessionId) : undefined;
      if (s && event === 'bind') resume.bound(s);
      else if (s) resume.unbound(s);
      emit(event, ...(args as GateEvents[typeof event]));
    },
  });
  const router = new Router(
    m ? m.observeTransport(transport) : transport,
    o.handlerTimeout,
    logger,
    createWarnLog(logger, FAILED_REQUEST_LOG_INTERVAL),
    warn,
  );
  const resume = new ResumeManager({
    serverId,
    userBanned: deps.userBanned,
    policy: o,
    registry,
    sessions,
    persistence,
    storage: o.storage,
    users,
    transport,
    router,
    logger,
    emit: (event, ...args) => emit(event, ...(args as GateEvents[typeof event])),
    warn,
    droppedAtCap: m && (() => m.detachedDropped++),
  });
  if (o.resumeWindow > 0) sessions.detached = resume;
  const route: RunRequest = (s: GateSession, p: IPublishPacket) => {
    m?.topicSeen(p.topic);
    // Answered by the gate itself, never routed (a client cannot reach the session service).
    if (isResumeTopic(p.topic)) return resume.handle(s, p);
    return router.route(s, p);
  };
  const jwt =
    o.jwt &&
    new JwtConnect({
      options: o.jwt,
      sessions,
      registry,
      serverId,
      logger,
      resumeAtConnect: (conn, userId, clean) => resume.atConnect(conn, userId, clean),
    });
  // After each request: the resume token a bind during it left pending (see ResumeManager.bound).
  const scheduler = new RequestScheduler(o.maxInflight, o.ordered, jwt ? jwt.answeringRefresh(route) : route, (s) =>
    resume.requestDone(s.conn.session ?? s),
  );
  return { transport, logger, warn, sessions, persistence, router, scheduler, jwt, resume };
}
