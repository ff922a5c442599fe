#!/usr/bin/env node
import { runCli } from '../lib/cli';

runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  terminal: process.stdout.isTTY ? { columns: process.stdout.columns || 80 } : undefined,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    // Not a user mistake: an AWS or I/O failure. Say what failed, still without a stack trace.
    process.stderr.write(`mirage-unikernel-ami: ${err.name}: ${err.message}\n`);
    process.exitCode = 1;
  },
);
