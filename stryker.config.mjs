// Mutation testing of the custom-resource handler's cleanup, failure, image and helper code:
// `npm run mutation` (scripts/mutation.sh, which bounds the run's time). Not part of `npm test`.
// What it measures, the score and every surviving mutant's justification: docs/mutation.md.

/** The handler files whose mutants are tested (the helper script's text, helper-script.ts, is not). */
export const MUTATED_FILES = [
  'lib/unikernel-ami/handler/failure.ts',
  'lib/unikernel-ami/handler/helper-instance.ts',
  'lib/unikernel-ami/handler/cleanup.ts',
  'lib/unikernel-ami/handler/image.ts',
];

// scripts/mutation.sh runs one file at a time (MUTATION_FILE), each with its own reports and
// incremental file: a run that hits its time budget keeps the results of the files it finished.
// A file may be narrowed to lines (Stryker's `file:from-to`), which get reports of their own.
const only = process.env.MUTATION_FILE;
const range = /^(.*\.ts)(?::(\d+)-(\d+))?$/.exec(only ?? '');
if (only && (!range || !MUTATED_FILES.includes(range[1]))) {
  throw new Error(`MUTATION_FILE=${only} is not one of ${MUTATED_FILES.join(', ')} (optionally with :from-to lines)`);
}
const name = only ? `${range[1].replace(/^.*\//, '').replace(/\.ts$/, '')}${range[2] ? `-${range[2]}-${range[3]}` : ''}` : 'all';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'jest',
  jest: {
    projectType: 'custom',
    configFile: 'jest.config.js',
    config: {
      // The handler's own tests, on the fake AWS account. Left out: the fault matrices (each runs a
      // lifecycle per fault and call, minutes per run; with per-test coverage nearly every mutant
      // would rerun a large part of them), the helper-script tests (they run the shell script in
      // bash and on a loop device; helper-script.ts is not mutated) and the twenty concurrent
      // builds (a load test, covered by the same code paths as repeat-safety and index tests).
      testMatch: ['<rootDir>/test/unikernel-ami/handler/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '/fault-matrix-', '/helper-script', '/concurrent-builds\\.test\\.ts$'],
      // A mutant's run stops at its first failing test: the small, fast test files go first.
      testSequencer: '<rootDir>/scripts/jest-small-first-sequencer.js',
    },
    enableFindRelatedTests: false,
  },
  mutate: only ? [only] : MUTATED_FILES,
  // Each mutant runs only the tests that reached its code in the initial run.
  coverageAnalysis: 'perTest',
  // A static mutant (a module-level constant) needs the whole test set; MUTATION_STATIC=1 runs them too.
  ignoreStatic: process.env.MUTATION_STATIC !== '1',
  // The machine this was written on had two cores shared with other work; MUTATION_CONCURRENCY
  // runs more test runners at once on a machine with cores to spare.
  concurrency: Number(process.env.MUTATION_CONCURRENCY ?? 1),
  // The tests run on simulated time: a mutant that makes a wait loop endless is caught by this.
  timeoutMS: 20_000,
  // Later runs retest only the mutants of changed code or of changed tests.
  incremental: true,
  incrementalFile: `reports/mutation/${name}.incremental.json`,
  // 'live' (scripts/stryker-live-reporter.mjs) prints each survivor as soon as it is known.
  plugins: ['@stryker-mutator/*', './scripts/stryker-live-reporter.mjs'],
  reporters: ['clear-text', 'progress-append-only', 'html', 'json', 'live'],
  htmlReporter: { fileName: `reports/mutation/${name}.html` },
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: true },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
