/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/packages'],
  testMatch: ['**/test/**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.tests.json' }],
  },
  // Tests run the TypeScript sources; child-process tests run the built dist (npm test builds first).
  moduleNameMapper: { '^@mqgate/rpc/redis$': '<rootDir>/packages/rpc/src/redis', '^@mqgate/([a-z]+)$': '<rootDir>/packages/$1/src' },
  testTimeout: 30000,
  maxWorkers: 2,
};
