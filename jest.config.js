/**
 * Type checking is done once by `tsc --noEmit` in `npm test`; ts-jest only transpiles, which keeps the suite fast.
 * The slow checks of the published package (test/consumer: cdk init apps on three Node versions;
 * test/extended: jsii, bindings, API.md, npm publish --dry-run) run with `npm run test:extended`
 * (jest.extended.config.js), not in `npm test`.
 */
// The AWS SDK warns once per process that its releases after January 2027 need Node 22 (this
// machine's Node is 20; the Lambdas run 24). Set here, before jest starts its workers, so they
// inherit it and the warning stays out of the test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/consumer/', '<rootDir>/test/extended/'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.jest.json' }],
  },
  setupFilesAfterEnv: ['aws-sdk-client-mock-jest'],
  // A worker per core. Jest's default leaves one core to itself (cores - 1), which on a 2-core
  // machine runs every file one after another; its own process only hands out files. The long
  // suites (the fault matrix, the Xen boots) are split so that no file holds up the rest.
  maxWorkers: '100%',
  testTimeout: 120000,
};
