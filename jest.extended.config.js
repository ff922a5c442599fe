/** The slow checks of the published package, run by `npm run test:extended` after `npm run build` (scripts/test-extended.sh). */
const base = require('./jest.config');

module.exports = {
  ...base,
  roots: ['<rootDir>/test/extended', '<rootDir>/test/consumer'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 30 * 60 * 1000,
};
