#!/usr/bin/env node
// The `mqgate` command's entry, committed so that npm links the bin at install time, before
// anything is built (npm links a bin only when its file exists; without one, `npx mqgate`
// would ask the public registry for an unscoped package of that name). It runs the compiled
// command, ../dist/bin.js, or says how to build it.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const compiled = join(__dirname, '..', 'dist', 'bin.js');
if (!existsSync(compiled)) {
  process.stderr.write(`mqgate: ${compiled} is missing: run \`npm run build\` first (in a clone of mqgate, at its root)\n`);
  process.exit(1);
}
require(compiled);
