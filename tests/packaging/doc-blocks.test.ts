/**
 * Every ```ts block of the user documentation (README.md, docs/**\/*.md) compiles in strict mode
 * against the packed package, as a user who copies it would compile it.
 *
 * The convention (CONTRIBUTING.md, "Code blocks in the docs"):
 * - a ```ts block is the body of an async function (so `await` and `return` work as in a request
 *   handler); its `import` lines are hoisted to the top of the file;
 * - names the block uses without defining them (`products`, `req`, `res`, `sha256`, …) are
 *   declared in an HTML comment right above the fence, which GitHub, npm and typedoc do not show:
 *   `<!-- prelude` … `-->`. A prelude holds top-level TypeScript (imports, interfaces,
 *   `declare const`);
 * - code that is not TypeScript meant to compile (a seed's JavaScript, a shell session) is fenced
 *   as what it is (```js, ```sh, ```text): those blocks are not checked.
 *
 * All blocks are written into one fresh project (./pack.ts) and checked by one `tsc` run; errors
 * are reported as `file.md:line` of the markdown. A sentinel block with a known error goes into
 * the same run: the check must report it at its exact line, so a checker that lost its errors
 * (or its line mapping) fails too.
 *
 * Runs in the driver7 project only (vitest.config.ts).
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshProject, root, run, STRICT } from './pack.js';

/** One line of a generated file and the markdown line it came from. */
interface SourceLine {
  readonly text: string;
  readonly at: string;
}

interface DocBlock {
  /** `file.md:line` of the opening fence. */
  readonly at: string;
  readonly lines: readonly SourceLine[];
}

const PRELUDE_START = /^<!--\s*prelude\s*$/;

/** Extracts the ```ts blocks of one markdown text, with their preludes, as checkable files. */
function extractBlocks(file: string, markdown: string): DocBlock[] {
  const lines = markdown.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i] as string)) {
      // Skip other fenced blocks whole, so a ```ts inside them is not taken for a fence.
      if (/^```/.test(lines[i] as string)) {
        i++;
        while (i < lines.length && !/^```\s*$/.test(lines[i] as string)) i++;
      }
      continue;
    }
    const fence = i;
    const body: { text: string; line: number }[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] as string); i++) {
      body.push({ text: lines[i] as string, line: i + 1 });
    }
    const prelude: { text: string; line: number }[] = [];
    if (fence > 0 && (lines[fence - 1] as string).trim() === '-->') {
      let start = fence - 2;
      while (start >= 0 && !PRELUDE_START.test(lines[start] as string)) start--;
      if (start >= 0) {
        for (let p = start + 1; p < fence - 1; p++) {
          prelude.push({ text: lines[p] as string, line: p + 1 });
        }
      }
    }
    const at = (line: number) => `${file}:${line}`;
    // Import statements (one or several lines, up to the one naming the module) are hoisted.
    const imports = new Set<number>();
    for (let b = 0; b < body.length; b++) {
      if (!/^import\s/.test(body[b]?.text as string)) continue;
      imports.add(b);
      while (
        b < body.length &&
        !/(from\s*|^import\s*)['"][^'"]+['"];?\s*$/.test(body[b]?.text as string)
      ) {
        imports.add(++b);
      }
    }
    const out: SourceLine[] = [];
    for (const [b, l] of body.entries())
      if (imports.has(b)) out.push({ text: l.text, at: at(l.line) });
    out.push({ text: 'export async function block() {', at: at(fence + 1) });
    for (const [b, l] of body.entries())
      if (!imports.has(b)) out.push({ text: l.text, at: at(l.line) });
    out.push({ text: '}', at: at(fence + 1) });
    for (const l of prelude) out.push({ text: l.text, at: `${at(l.line)} (prelude)` });
    blocks.push({ at: at(fence + 1), lines: out });
  }
  return blocks;
}

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(join(root, 'docs'), { recursive: true }))
    .filter((path) => path.endsWith('.md') && !path.startsWith('api'))
    .map((path) => join('docs', path));
  return ['README.md', ...docs.sort()];
}

/** The sentinel: a block that must fail at exactly this line. */
const SENTINEL = ['# sentinel', '', '```ts', "const n: number = 'not a number';", '```', ''].join(
  '\n',
);
const SENTINEL_ERROR = /^sentinel\.md:4 TS2322 /;

let stage: string;
let app: string;
let blocks: DocBlock[];
let errors: string[];

beforeAll(async () => {
  ({ stage, app } = await freshProject(['mongodb', 'bson', 'mongoose', 'vitest', '@types']));
  blocks = [];
  for (const file of await markdownFiles()) {
    blocks.push(...extractBlocks(file, await readFile(join(root, file), 'utf8')));
  }
  const all = [...blocks, ...extractBlocks('sentinel.md', SENTINEL)];
  await mkdir(join(app, 'blocks'));
  const generated = new Map<string, DocBlock>();
  await Promise.all(
    all.map(async (block, index) => {
      const name = `block${index}.ts`;
      generated.set(name, block);
      await writeFile(join(app, 'blocks', name), block.lines.map((line) => line.text).join('\n'));
    }),
  );
  await writeFile(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        ...STRICT,
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        noEmit: true,
      },
      include: ['blocks/*.ts'],
    }),
  );
  const result = await run(
    join(root, 'node_modules/.bin/tsc'),
    ['-p', 'tsconfig.json', '--pretty', 'false'],
    {
      cwd: app,
      maxBuffer: 64 * 1024 * 1024,
    },
  ).catch((error: { stdout: string }) => error);
  errors = [];
  for (const line of result.stdout.split('\n')) {
    const match = /^blocks\/(block\d+\.ts)\((\d+),\d+\): error (TS\d+): (.*)$/.exec(line);
    if (match === null) {
      // tsc continues a message on indented lines (overload details, elaboration).
      if (/^\s/.test(line) && errors.length > 0) errors[errors.length - 1] += `\n${line}`;
      else if (line.trim() !== '') errors.push(`(unparsed) ${line}`);
      continue;
    }
    const [, name, lineNo, code, message] = match as unknown as [
      string,
      string,
      string,
      string,
      string,
    ];
    const source = generated.get(name)?.lines[Number(lineNo) - 1];
    errors.push(`${source?.at ?? `${name}:${lineNo}`} ${code} ${message}`);
  }
}, 240_000);

afterAll(async () => {
  if (stage !== undefined) await rm(stage, { recursive: true, force: true });
});

describe('TypeScript blocks of the docs', () => {
  it('the check reports a failing block at its markdown line (the sentinel)', () => {
    expect(errors.filter((error) => error.startsWith('sentinel.md'))).toEqual([
      expect.stringMatching(SENTINEL_ERROR),
    ]);
  });

  it('finds the blocks of the README and of every guide', async () => {
    const files = new Set(blocks.map((block) => block.at.replace(/:\d+$/, '')));
    expect(files).toContain('README.md');
    const guides = (await readdir(join(root, 'docs/guides'))).filter(
      (file) => file.endsWith('.md') && file !== 'README.md',
    );
    for (const guide of guides) expect(files, guide).toContain(`docs/guides/${guide}`);
  });

  it('every block compiles in strict mode against the packed package', () => {
    expect(errors.filter((error) => !error.startsWith('sentinel.md'))).toEqual([]);
  });
});

describe('extractBlocks', () => {
  it('maps body and prelude lines to their markdown lines, hoists imports, skips other fences', () => {
    const markdown = [
      '```js', // 1
      '```ts', // 2: inside a js block, not a fence of its own
      '```', // 3
      '<!-- prelude', // 4
      'declare const x: number;', // 5
      '-->', // 6
      '```ts', // 7
      'const y = x + 1;', // 8
      "import { claimOnce } from 'mongo-atomics';", // 9
      'import {', // 10
      '  race,', // 11
      "} from 'mongo-atomics/testing';", // 12
      '```', // 13
    ].join('\n');
    const [block, ...rest] = extractBlocks('f.md', markdown);
    expect(rest).toEqual([]);
    expect(block?.at).toBe('f.md:7');
    expect(block?.lines.map((line) => `${line.at} ${line.text}`)).toEqual([
      "f.md:9 import { claimOnce } from 'mongo-atomics';",
      'f.md:10 import {',
      'f.md:11   race,',
      "f.md:12 } from 'mongo-atomics/testing';",
      'f.md:7 export async function block() {',
      'f.md:8 const y = x + 1;',
      'f.md:7 }',
      'f.md:5 (prelude) declare const x: number;',
    ]);
  });
});
