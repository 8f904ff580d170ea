/**
 * The published package, as a user installs it: `npm pack`, unpacked into a temporary project's
 * `node_modules/mongo-atomics`. Shared by the packaging tests.
 *
 * The tarball is packed from the package's `dist`. CI runs `npm run build` before `npm test`, so
 * `dist` is normally current; when it is missing or older than the sources (a local run without
 * a build), the package is built into the temporary directory instead of using a stale `dist`.
 * No registry is contacted: the other dependencies the project needs are linked from this
 * repository's node_modules.
 */
import { execFile } from 'node:child_process';
import {
  cp,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const root = resolve(import.meta.dirname, '../..');

/**
 * The compiler options of a careful user's project, for the packaging tests' fresh projects.
 * `skipLibCheck` as `tsc --init` sets it: checking the drivers' and Mongoose's own declarations
 * doubles the run time and tests them, not us (what ours resolve to is checked by the typed
 * calls and expected errors of each test).
 */
export const STRICT = {
  target: 'ES2022',
  lib: ['ES2023'],
  types: ['node'],
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  verbatimModuleSyntax: true,
  skipLibCheck: true,
} as const;

async function newestMtime(path: string): Promise<number> {
  const info = await stat(path);
  if (!info.isDirectory()) return info.mtimeMs;
  const entries = await readdir(path);
  const times = await Promise.all(entries.map((entry) => newestMtime(join(path, entry))));
  return Math.max(0, ...times);
}

/** Whether `dist` holds a build of the current sources. */
async function distIsCurrent(): Promise<boolean> {
  const outputs = [
    'index.js',
    'index.cjs',
    'testing.js',
    'testing.cjs',
    'testing.d.ts',
    'testing.d.cts',
    'index.d.ts.map',
    'index.d.cts.map',
  ];
  try {
    const built = Math.min(
      ...(await Promise.all(
        outputs.map(async (file) => (await stat(join(root, 'dist', file))).mtimeMs),
      )),
    );
    const inputs = Math.max(
      ...(await Promise.all(
        [
          'src',
          'tsup.config.ts',
          'package.json',
          'tsconfig.json',
          'tsconfig.build.json',
          'scripts/build.mjs',
        ].map((p) => newestMtime(join(root, p))),
      )),
    );
    return built >= inputs;
  } catch {
    return false;
  }
}

export interface FreshProject {
  /** The temporary directory holding the tarball and the project; remove it when done. */
  readonly stage: string;
  /** The project: `package.json` (ESM) and `node_modules/mongo-atomics` from the tarball. */
  readonly app: string;
  /** The tarball, as `npm pack` wrote it. */
  readonly tarball: string;
  /** Every file the tarball holds, sorted. */
  readonly packedFiles: readonly string[];
  /** Where the tarball's `dist` came from. */
  readonly built: 'dist' | 'fresh build';
}

/**
 * Packs the package and installs the tarball into a new project in a temporary directory,
 * with `linked` (names under this repository's node_modules) linked beside it.
 */
export async function freshProject(linked: readonly string[]): Promise<FreshProject> {
  const stage = await mkdtemp(join(tmpdir(), 'mongo-atomics-pack-'));
  const pkg = join(stage, 'pkg');
  await mkdir(pkg);
  // What package.json's `files` lists (dist aside, handled below), so the tarball holds what a
  // published one would.
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
    files: string[];
  };
  for (const file of ['package.json', ...manifest.files.filter((entry) => entry !== 'dist')]) {
    await cp(join(root, file), join(pkg, file), { recursive: true });
  }
  let built: FreshProject['built'];
  if (await distIsCurrent()) {
    built = 'dist';
    await cp(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
  } else {
    built = 'fresh build';
    await run(process.execPath, [join(root, 'scripts/build.mjs'), join(pkg, 'dist')], {
      cwd: root,
    });
  }
  // `--ignore-scripts`: `prepack` builds from the sources, which this staging copy does not
  // hold; `dist` is already in place.
  const { stdout } = await run(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', stage],
    {
      cwd: pkg,
    },
  );
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  if (packed === undefined) throw new Error(`npm pack printed no result: ${stdout}`);

  const app = join(stage, 'app');
  const modules = join(app, 'node_modules');
  await mkdir(modules, { recursive: true });
  await run('tar', ['-xzf', join(stage, packed.filename), '-C', modules]);
  await run('mv', [join(modules, 'package'), join(modules, 'mongo-atomics')]);
  for (const name of linked) {
    await symlink(await realpath(join(root, 'node_modules', name)), join(modules, name));
  }
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', private: true, type: 'module' }),
  );
  return {
    stage,
    app,
    tarball: join(stage, packed.filename),
    packedFiles: packed.files.map((file) => file.path).sort(),
    built,
  };
}
