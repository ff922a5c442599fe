// The order of test files in a mutation run (stryker.config.mjs): smallest first. Jest's own order
// runs the slowest files first, which is right for a whole suite on many workers, but a mutation run
// stops at the first failing test, and the focused unit tests (failure.test.ts, cleanup.test.ts...)
// are small and fast, while the lifecycle suites that also reach most mutants take seconds each.
const fs = require('fs');
const Sequencer = require('@jest/test-sequencer').default;

class SmallFirstSequencer extends Sequencer {
  sort(tests) {
    const size = (test) => fs.statSync(test.path).size;
    return [...tests].sort((a, b) => size(a) - size(b) || a.path.localeCompare(b.path));
  }
}

module.exports = SmallFirstSequencer;
