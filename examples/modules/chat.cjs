// The demo's `chat` module as a module file for `mqgate modules` (default export: a defineModule(...) result).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS module file
module.exports = require('../../packages/demo/dist/modules/chat.js').chatModule;
