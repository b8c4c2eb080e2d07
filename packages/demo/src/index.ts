export { userModule, createUserModule, LOGIN_REFUSED } from './modules/user';
export { chatModule, CHAT_TOPIC, JOIN_TOPIC, MAX_WHO, WHISPER_TOPIC } from './modules/chat';
export { echoModule } from './modules/echo';
