/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/packages'],
  testMatch: ['**/test/**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.tests.json' }],
  },
  // Tests run the TypeScript sources; child-process tests run the built dist (npm test builds first).
  // `@mqgate/<pkg>` is packages/<pkg>/src; a subpath export `@mqgate/<pkg>/<sub>` is packages/<pkg>/src/<sub>.
  moduleNameMapper: {
    // ESM sources (packages/sdk) import './x.js'; the file is ./x.ts.
    '^(\\.{1,2}/.*)\\.js$': '$1',
    '^@mqgate/([a-z-]+)$': '<rootDir>/packages/$1/src',
    '^@mqgate/([a-z-]+)/([a-z-]+)$': '<rootDir>/packages/$1/src/$2',
  },
  testTimeout: 30000,
  maxWorkers: 2,
};
