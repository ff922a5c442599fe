#!/usr/bin/env node
// Measures how long each test file of a mutation run takes (the test set of stryker.config.mjs),
// for scripts/jest-small-first-sequencer.js, which runs the fastest files first.
// Usage: node scripts/mutation-test-durations.js OUTPUT.json
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

async function main() {
  const root = path.join(__dirname, '..');
  const output = path.resolve(process.argv[2]);
  const { default: config } = await import(path.join(root, 'stryker.config.mjs'));
  const jest = config.jest.config;
  const raw = `${output}.jest.json`;
  const args = ['--config', 'jest.config.js', '--json', `--outputFile=${raw}`, '--silent',
    '--testMatch', ...jest.testMatch, '--testPathIgnorePatterns', ...jest.testPathIgnorePatterns];
  const run = spawnSync(path.join(root, 'node_modules', '.bin', 'jest'), args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (run.status !== 0) {
    process.stderr.write(run.stderr);
    throw new Error(`the tests of the mutation run did not pass (jest exit ${run.status}): fix them first`);
  }
  const results = JSON.parse(fs.readFileSync(raw, 'utf8')).testResults;
  const durations = Object.fromEntries(results.map((r) => [path.relative(root, r.name).split(path.sep).join('/'), r.endTime - r.startTime]));
  fs.writeFileSync(output, `${JSON.stringify(durations, null, 2)}\n`);
  fs.rmSync(raw);
  console.log(`mutation: measured ${results.length} test files (fastest first in each run): ${output}`);
}

main().catch((err) => {
  console.error(`mutation: ${err.message}`);
  process.exit(1);
});
