// Mutation testing of the custom-resource handler's cleanup, failure, image and helper code:
// `npm run mutation` (scripts/mutation.sh, which bounds the run's time). Not part of `npm test`.
// What it measures, the score and every surviving mutant's justification: docs/mutation.md.

import fs from 'node:fs';

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

/**
 * The unit tests of each mutated file: the first stage of a run (MUTATION_STAGE=unit) tests every
 * mutant with these alone. Stryker's jest runner loads every test file of the test set for each
 * mutant, and runs every test that reached it, without stopping at the first failure: with the
 * whole set, a mutant costs about 20 s here, most of it loading the lifecycle suites. The second
 * stage (MUTATION_STAGE=rest) runs the whole set, but only on the mutants the first did not detect
 * (MUTATION_MUTANTS: a JSON list of Stryker `file:line:column-line:column` ranges, written by
 * scripts/mutation-stages.js). A mutant the unit tests kill would be killed by the whole set, which
 * holds them, so the two stages give the statuses one run with the whole set would give.
 */
export const UNIT_TESTS = {
  'lib/unikernel-ami/handler/failure.ts': ['failure.test.ts'],
  'lib/unikernel-ami/handler/helper-instance.ts': ['helper-rounds.test.ts', 'helper-instance.test.ts', 'helper-faults.test.ts'],
  'lib/unikernel-ami/handler/cleanup.ts': ['cleanup-decisions.test.ts', 'cleanup.test.ts'],
  'lib/unikernel-ami/handler/image.ts': ['image.test.ts'],
};
const stage = process.env.MUTATION_STAGE;
if (stage !== undefined && (!only || !['unit', 'rest'].includes(stage) || (stage === 'rest' && !process.env.MUTATION_MUTANTS) || (stage === 'unit' && process.env.MUTATION_MUTANTS))) {
  throw new Error(`MUTATION_STAGE=${stage}: 'unit' or 'rest' (with MUTATION_MUTANTS), for one MUTATION_FILE`);
}
const name = `${only ? `${range[1].replace(/^.*\//, '').replace(/\.ts$/, '')}${range[2] ? `-${range[2]}-${range[3]}` : ''}` : 'all'}${stage ? `.${stage}` : ''}`;
const HANDLER_TESTS = '<rootDir>/test/unikernel-ami/handler';
const testMatch = stage === 'unit' ? UNIT_TESTS[range[1]].map((file) => `${HANDLER_TESTS}/${file}`) : [`${HANDLER_TESTS}/*.test.ts`];
const mutate = stage === 'rest' ? JSON.parse(fs.readFileSync(process.env.MUTATION_MUTANTS, 'utf8')) : only ? [only] : MUTATED_FILES;

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
      testMatch,
      testPathIgnorePatterns: ['/node_modules/', '/fault-matrix-', '/helper-script', '/concurrent-builds\\.test\\.ts$'],
    },
    enableFindRelatedTests: false,
  },
  mutate,
  // Each mutant runs only the tests that reached its code in the initial run.
  coverageAnalysis: 'perTest',
  // A static mutant (a module-level constant) needs the whole test set; MUTATION_STATIC=1 runs them too.
  ignoreStatic: process.env.MUTATION_STATIC !== '1',
  // The machine this was written on had two cores shared with other work; MUTATION_CONCURRENCY
  // runs more test runners at once on a machine with cores to spare.
  concurrency: Number(process.env.MUTATION_CONCURRENCY ?? 1),
  // The initial run of the whole test set takes minutes on a busy two-core machine (Stryker's default
  // limit of 5 was hit here while other tests ran).
  dryRunTimeoutMinutes: 20,
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
