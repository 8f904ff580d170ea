#!/usr/bin/env node
/**
 * `npm run build` (and `prepack`): the package's `dist/`, or the directory given as argument.
 *
 * 1. tsup bundles the JavaScript: ESM and CJS, both entry points, shared chunks, source maps.
 * 2. tsc writes one declaration file per source file with its declaration map (tsup's bundled
 *    declarations cannot carry maps: its declaration bundler turns `declarationMap` off).
 * 3. Every `.d.ts` gets a `.d.cts` twin whose relative imports name `.cjs` files, so that a CJS
 *    importer (`require` condition) resolves CJS-flavoured declarations all the way down; the
 *    maps are copied with it. `testing.d.ts` / `testing.d.cts` re-export `testing/index`, the
 *    paths the `exports` map names.
 *
 * The maps point into `../src/` (declaration maps carry no source text), which the package ships.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const out = resolve(process.argv[2] ?? join(root, 'dist'));
const bin = (name) => join(root, 'node_modules/.bin', name);

execFileSync(bin('tsup'), ['--out-dir', out], { cwd: root, stdio: 'inherit' });
execFileSync(bin('tsc'), ['-p', 'tsconfig.build.json', '--outDir', out], {
  cwd: root,
  stdio: 'inherit',
});

writeFileSync(join(out, 'testing.d.ts'), "export * from './testing/index.js';\n");

const relativeJs = /(['"])(\.{1,2}\/[^'"]*?)\.js\1/g;
for (const file of readdirSync(out, { recursive: true })) {
  if (typeof file !== 'string' || !file.endsWith('.d.ts')) continue;
  const cts = file.replace(/\.d\.ts$/, '.d.cts');
  const text = readFileSync(join(out, file), 'utf8')
    .replace(relativeJs, '$1$2.cjs$1')
    .replace(/\/\/# sourceMappingURL=(.*)\.d\.ts\.map\s*$/, '//# sourceMappingURL=$1.d.cts.map\n');
  writeFileSync(join(out, cts), text);
  let map;
  try {
    map = JSON.parse(readFileSync(join(out, `${file}.map`), 'utf8'));
  } catch {
    continue; // testing.d.ts, written above, has no map
  }
  // tsc wrote the sources relative to `out`; in the package, `dist/` and `src/` are siblings.
  map.sources = map.sources.map((source) =>
    relative(join(root, 'dist', dirname(file)), resolve(out, dirname(file), source)),
  );
  writeFileSync(join(out, `${file}.map`), JSON.stringify(map));
  writeFileSync(
    join(out, `${cts}.map`),
    JSON.stringify({ ...map, file: map.file.replace(/\.d\.ts$/, '.d.cts') }),
  );
}
