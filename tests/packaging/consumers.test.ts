/**
 * The packed package in the projects users really have: TypeScript with `module: nodenext`,
 * TypeScript with `moduleResolution: bundler`, plain CommonJS (`require`), and Mongoose apps
 * set up as docs/guides/mongoose.md says; each on the oldest driver the peer range allows
 * (6.9), the latest 6.x and the latest 7.x (Mongoose: the driver Mongoose itself depends on).
 * Each project is type-checked in strict mode, then its program runs against the test backend
 * and prints JSON that the test checks: a guardedDecrement that takes stock and one refused for
 * lack of it, a claimOnce and its repeat (Mongoose: in a transaction and a session too). A
 * second copy of the driver in a project (the mistake the guide's install avoids) fails the
 * typecheck: `MongoClient` of one copy is not assignable to the other's.
 *
 * The programs are in ./fixtures/consumers/. No registry is contacted: the tarball comes from
 * ./pack.ts, and the drivers, Mongoose and @types/node are linked from this repository's
 * node_modules (the alias packages `mongodb69`, `mongodb6`, `mongoose8`), as an install would
 * place them: `node_modules/mongodb` is the driver under test, the only copy in the project.
 *
 * Runs in the driver7 project only (vitest.config.ts): it picks its drivers itself.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freshProject, root, run, STRICT } from './pack.js';

const FIXTURES = join(import.meta.dirname, 'fixtures/consumers');
const TSC = join(root, 'node_modules/.bin/tsc');

interface Kind {
  readonly name: string;
  /** The program in ./fixtures/consumers/, and what Node runs after compiling it. */
  readonly source: string;
  readonly output: string;
  readonly compilerOptions: Record<string, unknown>;
  /** The declaration file of ours that the compiler must have used. */
  readonly declarations: string;
}

const KINDS: readonly Kind[] = [
  {
    name: 'TypeScript, module nodenext (ESM)',
    source: 'esm.ts',
    output: 'out/esm.js',
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', outDir: 'out' },
    declarations: 'mongo-atomics/dist/index.d.ts',
  },
  {
    name: 'TypeScript, moduleResolution bundler',
    source: 'esm.ts',
    output: 'out/esm.js',
    compilerOptions: { module: 'ESNext', moduleResolution: 'Bundler', outDir: 'out' },
    declarations: 'mongo-atomics/dist/index.d.ts',
  },
  {
    name: 'plain CommonJS (require), checked with checkJs',
    source: 'cjs.cjs',
    output: 'cjs.cjs',
    compilerOptions: {
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      allowJs: true,
      checkJs: true,
      noEmit: true,
      verbatimModuleSyntax: false,
    },
    declarations: 'mongo-atomics/dist/index.d.cts',
  },
];

/** Driver packages of this repository's node_modules: the peer range's floor, latest 6, latest 7. */
const DRIVERS = ['mongodb69', 'mongodb6', 'mongodb'] as const;

let stage: string;
let packed: string;
let uri: string;

beforeAll(async () => {
  const project = await freshProject([]);
  stage = project.stage;
  packed = join(project.app, 'node_modules/mongo-atomics');
  uri = inject('mongoUri');
}, 180_000);

afterAll(async () => {
  if (stage !== undefined) await rm(stage, { recursive: true, force: true });
});

async function packageDir(from: string, name: string): Promise<string> {
  return dirname(
    await realpath(createRequire(join(from, 'noop.js')).resolve(`${name}/package.json`)),
  );
}

async function versionOf(dir: string): Promise<string> {
  return (JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { version: string })
    .version;
}

/**
 * A project with its own copy of the packed package (so that its `import 'mongodb'` resolves
 * to this project's driver) and `links` (name -> directory) in its node_modules.
 */
async function consumer(
  name: string,
  links: Readonly<Record<string, string>>,
  source: string,
  compilerOptions: Record<string, unknown>,
): Promise<string> {
  const dir = join(stage, name);
  const modules = join(dir, 'node_modules');
  await mkdir(join(modules, '@types'), { recursive: true });
  await cp(packed, join(modules, 'mongo-atomics'), { recursive: true });
  await symlink(await packageDir(root, '@types/node'), join(modules, '@types/node'));
  for (const [linked, target] of Object.entries(links)) {
    await symlink(target, join(modules, linked));
  }
  await cp(join(FIXTURES, source), join(dir, source));
  await writeFile(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { ...STRICT, ...compilerOptions }, files: [source] }),
  );
  return dir;
}

/**
 * Installs a copy of the package at `pkgDir` as `modules/<name>`, its dependencies linked in its
 * own node_modules, as npm would lay out a project that depends on it directly. A link would not
 * do for Mongoose: its declarations import `mongoose` by name, which from the real path of an
 * alias package (`node_modules/mongoose8`) finds this repository's Mongoose 9 instead.
 */
async function installCopy(modules: string, name: string, pkgDir: string): Promise<void> {
  const target = join(modules, name);
  await cp(pkgDir, target, {
    recursive: true,
    filter: (source) => !source.slice(pkgDir.length).includes('/node_modules'),
  });
  const { dependencies = {} } = JSON.parse(
    await readFile(join(pkgDir, 'package.json'), 'utf8'),
  ) as { dependencies?: Record<string, string> };
  for (const dependency of Object.keys(dependencies)) {
    const link = join(target, 'node_modules', dependency);
    await mkdir(dirname(link), { recursive: true });
    await symlink(await installedDir(pkgDir, dependency), link);
  }
}

/** Where Node's lookup finds the package `name` from `from`: its real path (no exports map needed). */
async function installedDir(from: string, name: string): Promise<string> {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(candidate)) return realpath(candidate);
    if (dirname(dir) === dir) throw new Error(`${name} is not installed where ${from} can find it`);
  }
}

/** Type-checks (and emits, unless noEmit) the project: the compiler's errors and the files it read. */
async function compile(dir: string): Promise<{ errors: string[]; files: string[] }> {
  const result = await run(TSC, ['-p', 'tsconfig.json', '--listFiles'], { cwd: dir }).catch(
    (error: { stdout?: string; stderr?: string }) => ({
      stdout: `${error.stdout ?? ''}\nerror TS(exit): ${error.stderr ?? ''}`,
    }),
  );
  const lines = result.stdout.split('\n');
  return {
    errors: lines.filter((line) => line.includes('error TS')),
    files: lines.filter((line) => line.startsWith('/')),
  };
}

/** The driver packages whose declarations the compiler read (each one's `mongodb.d.ts`). */
function driversRead(files: readonly string[]): string[] {
  return [
    ...new Set(files.filter((file) => file.endsWith('/mongodb.d.ts')).map((file) => dirname(file))),
  ];
}

async function runProgram(dir: string, file: string): Promise<unknown> {
  const dbName = `consumer_${Math.random().toString(36).slice(2, 10)}`;
  const { stdout } = await run(process.execPath, [file], {
    cwd: dir,
    env: { ...process.env, MONGO_URI: uri, DB_NAME: dbName },
  });
  return JSON.parse(stdout);
}

describe('the packed package in user projects: typechecks strictly and runs', () => {
  for (const kind of KINDS) {
    for (const driver of DRIVERS) {
      it(`${kind.name}, ${driver}`, async () => {
        const driverDir = await packageDir(root, driver);
        const dir = await consumer(
          `${kind.source}-${kind.compilerOptions.moduleResolution}-${driver}`,
          { mongodb: driverDir },
          kind.source,
          kind.compilerOptions,
        );
        const { errors, files } = await compile(dir);
        expect(errors).toEqual([]);
        expect(files.filter((file) => file.endsWith(kind.declarations))).toHaveLength(1);
        // The only driver the compiler saw is the one under test.
        expect(driversRead(files)).toEqual([driverDir]);

        expect(await runProgram(dir, kind.output)).toEqual({
          driver: await versionOf(driverDir),
          first: { decremented: 2 },
          second: { outcome: 'insufficient', available: 2 },
          claims: ['claimed', 'alreadyClaimed'],
        });
      }, 60_000);
    }
  }
});

/** Mongoose packages of this repository's node_modules: Mongoose 9 (`mongoose`) and 8 (`mongoose8`). */
const MONGOOSES = [
  { name: 'mongoose', major: '9' },
  { name: 'mongoose8', major: '8' },
] as const;

describe('the packed package in a Mongoose app set up as docs/guides/mongoose.md says', () => {
  for (const mongoose of MONGOOSES) {
    it(`Mongoose ${mongoose.major}, on the driver Mongoose depends on: strict typecheck, transaction, session, typed collections`, async () => {
      const mongooseDir = await packageDir(root, mongoose.name);
      // The install the guide gives: `mongodb` pinned to the range Mongoose declares, so the
      // project has one driver, the one Mongoose resolves.
      const driverDir = await packageDir(mongooseDir, 'mongodb');
      const dir = await consumer(
        `mongoose-${mongoose.major}`,
        { mongodb: driverDir },
        'mongoose.ts',
        {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          outDir: 'out',
        },
      );
      await installCopy(join(dir, 'node_modules'), 'mongoose', mongooseDir);
      const { errors, files } = await compile(dir);
      expect(errors).toEqual([]);
      expect(driversRead(files)).toEqual([driverDir]);

      expect(await runProgram(dir, 'out/mongoose.js')).toEqual({
        mongoose: await versionOf(mongooseDir),
        driver: await versionOf(driverDir),
        sharedDriver: true,
        placed: { outcome: 'placed', stock: 2 },
        untyped: { outcome: 'insufficient', available: 2 },
        claims: ['claimed', 'alreadyClaimed'],
        order: { status: 'paid', hasUpdatedAt: true },
      });
      expect(await versionOf(mongooseDir)).toMatch(new RegExp(`^${mongoose.major}\\.`));
    }, 60_000);
  }
});
