/**
 * The example apps, judged as a user would run them: copied into a fresh project where
 * `mongo-atomics` is the packed package (./pack.ts), type-checked there without this
 * repository's path aliases, and their demo races (examples/<name>/demo.ts: concurrent HTTP
 * requests to the naive and to the real handlers) run there against the test backend.
 *
 * Everything under examples/ is copied: what starts an embedded MongoDB for `npm run example`
 * lives outside it (scripts/run-example.ts), so every file there is one a user can copy.
 *
 * Runs in the driver7 project only (vitest.config.ts).
 */
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FreshProject, freshProject, root, run, STRICT } from './pack.js';

const EXAMPLES = ['carts', 'gamification', 'inventory', 'jobs', 'ticketing'];
const examplesDir = join(root, 'examples');
/** What an example may import besides its own files: the public entries and its dependencies. */
const ALLOWED = /^(mongo-atomics|mongo-atomics\/testing|mongodb|express|zod|mongoose|node:.+)$/;

async function tsFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

const importsOf = (text: string): string[] =>
  [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s+['"]([^'"]+)['"]/gm)].map(
    (match) => match[1] as string,
  );

describe('the example apps', () => {
  it('import the library only by its package names, and nothing outside examples/', async () => {
    const files = await tsFiles(examplesDir);
    for (const name of EXAMPLES) {
      expect(
        files.some((file) => file.startsWith(`${name}/`)),
        name,
      ).toBe(true);
    }
    const offending: string[] = [];
    for (const file of files) {
      for (const specifier of importsOf(await readFile(join(examplesDir, file), 'utf8'))) {
        if (specifier.startsWith('.')) {
          const target = relative(examplesDir, join(examplesDir, dirname(file), specifier));
          if (target.startsWith('..')) {
            offending.push(`${file}: ${specifier}`);
          }
        } else if (!ALLOWED.test(specifier)) {
          offending.push(`${file}: ${specifier}`);
        }
      }
    }
    expect(offending).toEqual([]);
  });

  describe('in a fresh project, with the packed package', () => {
    let project: FreshProject;

    beforeAll(async () => {
      project = await freshProject([
        'mongodb',
        'express',
        'zod',
        'mongoose',
        'tsx',
        '@types',
        'typescript',
      ]);
      for (const file of await tsFiles(examplesDir)) {
        await mkdir(dirname(join(project.app, 'examples', file)), { recursive: true });
        await cp(join(examplesDir, file), join(project.app, 'examples', file));
      }
      await writeFile(
        join(project.app, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            ...STRICT,
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            noEmit: true,
          },
          include: ['examples'],
        }),
      );
    }, 180_000);

    afterAll(async () => {
      if (project !== undefined) await rm(project.stage, { recursive: true, force: true });
    });

    it('type-check against the package’s published declarations', async () => {
      const result = await run(
        process.execPath,
        [
          join(project.app, 'node_modules/typescript/bin/tsc'),
          '-p',
          'tsconfig.json',
          '--listFiles',
        ],
        { cwd: project.app },
      ).catch((error: { stdout: string }) => error);
      const listed = result.stdout.split('\n');
      expect(listed.filter((line) => line.includes('error TS'))).toEqual([]);
      // `mongo-atomics` resolved to the packed package's declarations, not to any sources.
      expect(
        listed.some((line) => line.endsWith('node_modules/mongo-atomics/dist/index.d.ts')),
      ).toBe(true);
      expect(listed.filter((line) => line.includes('/src/'))).toEqual([]);
    }, 120_000);

    it('their demo races, over HTTP: every naive handler breaks its invariant, every real one holds', async () => {
      await writeFile(
        join(project.app, 'races.ts'),
        `import { MongoClient } from 'mongodb';
const client = await new MongoClient(process.env.MONGODB_URI!, { maxPoolSize: 200 }).connect();
const db = client.db('ma_packaged_examples_' + process.pid);
const results: Record<string, unknown> = {};
try {
  for (const name of ${JSON.stringify(EXAMPLES)}) {
    const { scenario } = await import('./examples/' + name + '/demo.ts');
    const naive = await scenario.run(db, 'naive', () => {});
    const safe = await scenario.run(db, 'safe', () => {});
    results[name] = { naive: naive.held, safe: safe.held, safeSucceeded: safe.succeeded > 0 };
  }
} finally {
  await db.dropDatabase();
  await client.close();
}
console.log(JSON.stringify(results));
`,
      );
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'races.ts'], {
        cwd: project.app,
        env: { ...process.env, MONGODB_URI: inject('mongoUri') },
      });
      const expected = Object.fromEntries(
        EXAMPLES.map((name) => [name, { naive: false, safe: true, safeSucceeded: true }]),
      );
      expect(JSON.parse(stdout.trim().split('\n').at(-1) as string)).toEqual(expected);
    }, 180_000);
  });
});
