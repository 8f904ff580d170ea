/**
 * The packed package's declarations come with declaration maps that lead to shipped sources,
 * so "go to definition" on `guardedDecrement` in a user's editor opens `src/guarded-decrement.ts`
 * instead of a declaration file. Both type flavours have them: `.d.ts` (import) and `.d.cts`
 * (require), and a `.d.cts` only imports `.cjs` declarations.
 *
 * Runs in the driver7 project only (vitest.config.ts).
 */
import { readFile, rm } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshProject } from './pack.js';

let stage: string;
let app: string;
let packedFiles: readonly string[];

beforeAll(async () => {
  ({ stage, app, packedFiles } = await freshProject([]));
}, 180_000);

afterAll(async () => {
  if (stage !== undefined) await rm(stage, { recursive: true, force: true });
});

const pkg = () => join(app, 'node_modules/mongo-atomics');

describe('declaration maps', () => {
  it('every declaration file the exports map reaches has a map, and every map source ships', async () => {
    const declarations = packedFiles.filter((file) => /\.d\.c?ts$/.test(file));
    // The entry points, the primitives and the testing kit, in both flavours.
    for (const file of ['index', 'guarded-decrement', 'testing/index', 'testing/race']) {
      expect(declarations).toContain(`dist/${file}.d.ts`);
      expect(declarations).toContain(`dist/${file}.d.cts`);
    }
    const unmapped: string[] = [];
    const missing: string[] = [];
    for (const file of declarations) {
      // dist/testing.d.{ts,cts} only re-export dist/testing/index, which has its map.
      if (/^dist\/testing\.d\.c?ts$/.test(file)) continue;
      const text = await readFile(join(pkg(), file), 'utf8');
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
      const mapFile = url === undefined ? undefined : normalize(join(dirname(file), url));
      if (mapFile === undefined || !packedFiles.includes(mapFile)) {
        unmapped.push(file);
        continue;
      }
      const map = JSON.parse(await readFile(join(pkg(), mapFile), 'utf8')) as {
        file: string;
        sources: string[];
      };
      expect(join(dirname(file), map.file), mapFile).toBe(file);
      for (const source of map.sources) {
        const shipped = normalize(join(dirname(file), source));
        if (!packedFiles.includes(shipped)) missing.push(`${mapFile} -> ${shipped}`);
      }
    }
    expect(unmapped).toEqual([]);
    expect(missing).toEqual([]);
    expect(packedFiles).toContain('src/guarded-decrement.ts');
  });

  it('CJS declarations import only CJS declarations', async () => {
    const wrong: string[] = [];
    for (const file of packedFiles.filter((f) => f.endsWith('.d.cts'))) {
      const text = await readFile(join(pkg(), file), 'utf8');
      for (const match of text.matchAll(/(['"])(\.{1,2}\/[^'"]+)\1/g)) {
        if (!(match[2] as string).endsWith('.cjs')) wrong.push(`${file}: ${match[2]}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
