import { defineConfig } from 'tsup';

export default defineConfig({
  // Two entry points: the library, and `mongo-atomics/testing` for users' test suites. The
  // library's entry must not pull the testing code in; code both share goes into a chunk.
  entry: { index: 'src/index.ts', testing: 'src/testing/index.ts' },
  format: ['esm', 'cjs'],
  // Declarations come from tsc (scripts/build.mjs), with declaration maps, which tsup's bundled
  // declarations cannot have.
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
  treeshake: true,
  splitting: true,
  // The driver is a peer dependency: never bundle it.
  external: ['mongodb'],
});
