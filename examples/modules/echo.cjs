// The demo's `echo` module as a module file for `mqgate modules` (default export: a defineModule(...) result).
module.exports = require('../../packages/demo/dist/modules/echo.js').echoModule;
