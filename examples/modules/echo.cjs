// The demo's `echo` module as a module file for `mqgate modules` (default export: a defineModule(...) result).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS module file
module.exports = require('../../packages/demo/dist/modules/echo.js').echoModule;
