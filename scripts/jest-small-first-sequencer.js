// The order of test files in a mutation run (stryker.config.mjs): fastest first. Jest's own order
// runs the slowest files first, which is right for a whole suite on many workers, but a mutation run
// stops at the first failing test, and the focused unit tests (failure.test.ts, image.test.ts,
// cleanup-decisions.test.ts...) take a second or two, while the lifecycle suites that also reach
// most mutants take many seconds each. A unit test file is not always small, so the order comes
// from each file's measured time when scripts/mutation.sh has measured it
// (MUTATION_TEST_DURATIONS: a JSON object of project-relative path to milliseconds), and from its
// size otherwise.
const fs = require('fs');
const path = require('path');
const Sequencer = require('@jest/test-sequencer').default;

function measuredDurations() {
  const file = process.env.MUTATION_TEST_DURATIONS;
  return file && fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
}

class FastFirstSequencer extends Sequencer {
  sort(tests) {
    const durations = measuredDurations();
    const key = (test) => {
      const relative = path.relative(test.context.config.rootDir, test.path).split(path.sep).join('/');
      return durations[relative] ?? fs.statSync(test.path).size;
    };
    return [...tests].sort((a, b) => key(a) - key(b) || a.path.localeCompare(b.path));
  }
}

module.exports = FastFirstSequencer;
