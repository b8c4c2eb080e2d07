// The demo's `user` module as a module file for `mqgate modules` (default export: a defineModule(...) result).
module.exports = require('../../packages/demo/dist/modules/user.js').userModule;
