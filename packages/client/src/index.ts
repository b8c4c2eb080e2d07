/**
 * @mqgate/client: what backend modules use. The backend {@link Session}, module
 * definitions ({@link defineModule}), the {@link ModuleHost} that serves them, and the
 * {@link App} that starts a gate and modules on one transport.
 */
export { SessionVerbError } from './errors';
export { Session, type GuestRule, type MessageBody, type PushOptions, type SessionOptions } from './session';
export {
  defineModule,
  type Handler,
  type HandlerContext,
  type HandlerName,
  type HandlerPayload,
  type Handlers,
  type ModuleContext,
  type ModuleDefinition,
  type ModuleHook,
  type ModuleSpec,
} from './module';
export { ModuleHost, type ModuleHostOptions } from './module-host';
export { App, createApp, type AppEvents, type AppOptions } from './app';
export {
  replyWithProperties,
  REPLY_PROPERTIES_TAG,
  type Mqtt5PushProperties,
  type Mqtt5Request,
  type ReplyProperties,
  type UserProperties,
} from '@mqgate/rpc';
export { stopOnSignals } from './signals';
