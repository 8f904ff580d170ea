/**
 * The published package, as a user installs it: `npm pack`, unpacked into a temporary project's
 * node_modules, then `mongo-atomics/testing` (and `mongo-atomics`) imported from ESM and from
 * CJS, and type-checked through the exports map from `.mts` and `.cts` files, with the
 * testing-kit guide's example among them.
 *
 * Packing and installing: ./pack.ts (no registry is contacted: `mongodb`, `vitest` and `@types`
 * are linked from this repository).
 *
 * Runs in the driver7 project only (vitest.config.ts): it does not use the driver under test.
 */
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshProject, root, run } from './pack.js';

const KIT_EXPORTS = [
  'FailPointError',
  'InvariantViolationError',
  'NaiveVersusSafeError',
  'assertInvariant',
  'assertNaiveBreaksSafeHolds',
  'barrier',
  'clearFailPoint',
  'naiveVersusSafe',
  'race',
  'raceClients',
  'setFailPoint',
  'uniqueAppName',
  'withFailPoint',
];
/** Names only the testing code contains; the main entry's files must not. */
const KIT_ONLY = [
  'configureFailPoint',
  'naiveVersusSafe',
  'raceClients',
  'InvariantViolationError',
];

let stage: string;
let app: string;
let packedFiles: readonly string[];
let built: 'dist' | 'fresh build';

beforeAll(async () => {
  ({ stage, app, packedFiles, built } = await freshProject(['mongodb', 'vitest', '@types']));
}, 180_000);

afterAll(async () => {
  if (stage !== undefined) await rm(stage, { recursive: true, force: true });
});

const PROBE = `
  const kitExports = Object.keys(kit).sort();
  const report = await kit.race(3, (i) => ({ outcome: i === 0 ? 'first' : 'other' }));
  let barrierError;
  try { kit.barrier(0); } catch (error) { barrierError = error; }
  console.log(JSON.stringify({
    kitExports,
    mainHasKit: kitExports.filter((name) => name in lib),
    tally: { ...report.tally },
    tallyPrototype: Object.getPrototypeOf(report.tally),
    barrierError: barrierError && barrierError.message,
    sameErrorClass: barrierError instanceof lib.InvalidArgumentError,
    guard: lib.isInvalidArgumentError(barrierError),
  }));
`;
const EXPECTED_PROBE = {
  kitExports: KIT_EXPORTS,
  mainHasKit: [],
  tally: { first: 1, other: 2 },
  tallyPrototype: null,
  barrierError: 'barrier: option "parties" must be a positive integer, got 0',
  sameErrorClass: true,
  guard: true,
};

describe('the packed package', () => {
  it('ships the testing entry in ESM and CJS with their types, and no tests', () => {
    for (const file of ['testing.js', 'testing.cjs', 'testing.d.ts', 'testing.d.cts']) {
      expect(packedFiles, `${file} (from ${built})`).toContain(`dist/${file}`);
    }
    // src/ ships as the target of the declaration maps; tests and the test server do not.
    expect(packedFiles.filter((file) => /^(tests|offline-server)\//.test(file))).toEqual([]);
  });

  it('keeps the testing code out of the main entry: no file the main entry loads contains it', async () => {
    const dist = join(app, 'node_modules/mongo-atomics/dist');
    const mainFiles = (await readdir(dist)).filter(
      (file) => /\.(c?js)$/.test(file) && !file.startsWith('testing.'),
    );
    expect(mainFiles).toContain('index.js');
    for (const file of mainFiles) {
      const text = await readFile(join(dist, file), 'utf8');
      expect(
        KIT_ONLY.filter((name) => text.includes(name)),
        file,
      ).toEqual([]);
    }
  });

  it('the testing entry loads nothing but the mongodb peer, Node built-ins and its own chunks (no test runner)', async () => {
    const dist = join(app, 'node_modules/mongo-atomics/dist');
    // Follow the static imports of testing.js and testing.cjs through the package's own files.
    const specifiers = new Set<string>();
    const pending = ['testing.js', 'testing.cjs'];
    const seen = new Set<string>();
    for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
      if (seen.has(file)) continue;
      seen.add(file);
      const text = await readFile(join(dist, file), 'utf8');
      for (const match of text.matchAll(
        /^(?:import\b.*?\bfrom |import |.*?\brequire\()['"]([^'"]+)['"]/gm,
      )) {
        const specifier = match[1] as string;
        if (specifier.startsWith('./')) pending.push(specifier.slice(2));
        else if (!builtinModules.includes(specifier.replace(/^node:/, '')))
          specifiers.add(specifier);
      }
    }
    expect([...specifiers]).toEqual(['mongodb']);
    expect(seen.size).toBeGreaterThan(2); // the shared chunks were followed
  });

  it('import "mongo-atomics/testing" from ESM works, sharing error classes with the main entry', async () => {
    await writeFile(
      join(app, 'probe.mjs'),
      `import * as kit from 'mongo-atomics/testing';\nimport * as lib from 'mongo-atomics';\n${PROBE}`,
    );
    const { stdout } = await run(process.execPath, ['probe.mjs'], { cwd: app });
    expect(JSON.parse(stdout)).toEqual(EXPECTED_PROBE);
  });

  it('require("mongo-atomics/testing") from CJS works, sharing error classes with the main entry', async () => {
    await writeFile(
      join(app, 'probe.cjs'),
      `const kit = require('mongo-atomics/testing');\nconst lib = require('mongo-atomics');\n(async () => {${PROBE}})();`,
    );
    const { stdout } = await run(process.execPath, ['probe.cjs'], { cwd: app });
    expect(JSON.parse(stdout)).toEqual(EXPECTED_PROBE);
  });

  it("type-checks against the exports map from .mts and .cts, and the guide's example compiles", async () => {
    const guide = await readFile(join(root, 'docs/guides/testing-kit.md'), 'utf8');
    const example = /```ts\n(\/\/ stock\.race\.test\.ts[\s\S]*?)```/.exec(guide)?.[1];
    expect(example, 'the guide has its example block').toBeDefined();
    await writeFile(join(app, 'stock.race.test.ts'), example as string);
    const typed = (from: string) => `
      ${from}
      const gate: kit.Barrier = kit.barrier(2);
      const report: Promise<kit.RaceReport<{ outcome: 'a' }>> = kit.race(2, async () => ({ outcome: 'a' as const }));
      const spec: kit.FailPointSpec = { mode: { times: 1 }, data: { failCommands: ['insert'] } };
      // @ts-expect-error a barrier is not a number (fails if the declarations collapsed to any)
      const notNumber: number = kit.barrier(2);
      // @ts-expect-error a race resolves to a report, not a string
      const notString: Promise<string> = kit.race(1, () => 1);
      // @ts-expect-error 'off' is not a mode of a spec
      const off: kit.FailPointSpec = { mode: 'off', data: { failCommands: ['insert'] } };
      export { gate, report, spec, off, notNumber, notString };
    `;
    await writeFile(join(app, 'types.mts'), typed(`import * as kit from 'mongo-atomics/testing';`));
    await writeFile(
      join(app, 'types.cts'),
      typed(`import kit = require('mongo-atomics/testing');`),
    );
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          types: ['node'],
          noEmit: true,
          // The dependencies' own declarations are not under test (and slow to check); what
          // ours resolve to is, through the assignments and the expected errors above (an
          // \`any\` from a broken declaration would make those expected errors go missing).
          skipLibCheck: true,
        },
        files: ['types.mts', 'types.cts', 'stock.race.test.ts'],
      }),
    );
    const result = await run(
      join(root, 'node_modules/.bin/tsc'),
      ['-p', 'tsconfig.json', '--listFiles'],
      {
        cwd: app,
      },
    ).catch((error: { stdout: string }) => error);
    const listed = result.stdout.split('\n');
    expect(listed.filter((line) => line.includes('error TS'))).toEqual([]);
    // Both type flavours were used: the ESM and the CJS declarations of the testing entry.
    expect(
      listed.filter((line) => /mongo-atomics\/dist\/testing\.d\.c?ts$/.test(line)).length,
    ).toBe(2);
  }, 120_000);
});
