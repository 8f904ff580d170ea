#!/usr/bin/env node
/**
 * `npm run bench`: the benchmark suite (bench/main.ts) on the package's own build.
 *
 * The library is measured as users run it: its JavaScript is built by tsup with the package's
 * configuration (tsup.config.ts, ES modules only) into a new directory under
 * node_modules/.cache (where `mongodb` resolves), and bench/main.ts runs under tsx with
 * `mongo-atomics` resolved to that build, through a tsconfig there that extends the
 * repository's and maps only the package's names. Through the sources instead, tsx's transform
 * would add its own cost to every call (it names each function each time one is created),
 * about twice the library's CPU per call. The directory is removed afterwards.
 *
 * Arguments are passed to bench/main.ts; the exit code is its exit code.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const bin = (name) => join(root, 'node_modules/.bin', name);
const cache = join(root, 'node_modules/.cache');
mkdirSync(cache, { recursive: true });
const dir = mkdtempSync(join(cache, 'mongo-atomics-bench-lib-'));

let code = 1;
try {
  const lib = join(dir, 'lib');
  execFileSync(bin('tsup'), ['--out-dir', lib, '--format', 'esm', '--silent'], {
    cwd: root,
    stdio: 'inherit',
  });
  const tsconfig = join(dir, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    `${JSON.stringify(
      {
        extends: join(root, 'tsconfig.json'),
        compilerOptions: {
          paths: {
            'mongo-atomics': ['./lib/index.js'],
            'mongo-atomics/testing': ['./lib/testing.js'],
          },
        },
      },
      null,
      2,
    )}\n`,
  );
  const child = spawn(
    bin('tsx'),
    ['--tsconfig', tsconfig, join(root, 'bench/main.ts'), ...process.argv.slice(2)],
    { cwd: root, stdio: 'inherit' },
  );
  const forward = (signal) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  code = await new Promise((done) =>
    child.once('exit', (c, signal) => done(c ?? (signal ? 1 : 0))),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = code;
