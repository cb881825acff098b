#!/usr/bin/env node
// The `agentctl` bin: loads tsx so the TypeScript CLI runs as is (the project has no build step).
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS launcher */
require('tsx/cjs');
require('./agentctl')
  .main(process.argv)
  .then((code) => (process.exitCode = code));
