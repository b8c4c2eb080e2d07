// A module file for `mqgate modules` in the packed app (the command loads it from the app).
'use strict';
const { defineModule } = require('@mqgate/client');

module.exports = defineModule({ type: 'echo', handlers: { HD_echo: async (_session, payload) => payload } });
