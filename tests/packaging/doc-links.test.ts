/**
 * Every relative link of README.md, CONTRIBUTING.md, CHANGELOG.md and docs/**\/*.md resolves:
 * the target file or directory exists, and a `#fragment` names a heading of the target markdown
 * file (GitHub's heading ids). The README's links into docs/ point to files the package ships (package.json
 * `files`), so they also resolve in an installed package. CONTRIBUTING.md, "Links", says why
 * npm's page needs the `repository` field on top of this.
 *
 * No network: absolute URLs are not fetched. Runs in the driver7 project only (it does not use
 * the driver).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from './pack.js';

interface Link {
  /** `file.md:line` */
  readonly at: string;
  readonly target: string;
}

/** Markdown with fenced code, inline code and HTML comments blanked out (lines kept). */
function prose(markdown: string): string[] {
  const out: string[] = [];
  let fence: string | undefined;
  let comment = false;
  for (const line of markdown.split('\n')) {
    const opener = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== undefined) {
      if (opener?.startsWith(fence) && line.trim() === opener) {
        fence = undefined;
      }
      out.push('');
      continue;
    }
    if (opener !== undefined) {
      fence = opener;
      out.push('');
      continue;
    }
    let text = line;
    if (comment) {
      const end = text.indexOf('-->');
      if (end === -1) {
        out.push('');
        continue;
      }
      comment = false;
      text = text.slice(end + 3);
    }
    text = text.replace(/<!--.*?-->/g, '');
    const open = text.indexOf('<!--');
    if (open !== -1) {
      comment = true;
      text = text.slice(0, open);
    }
    out.push(text.replace(/(`+)[^`]*?\1/g, ''));
  }
  return out;
}

function links(file: string, markdown: string): Link[] {
  const found: Link[] = [];
  prose(markdown).forEach((line, index) => {
    const at = `${file}:${index + 1}`;
    for (const match of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      found.push({ at, target: match[1] as string });
    }
    const reference = /^\s*\[[^\]]+\]:\s*(\S+)/.exec(line);
    if (reference !== null) found.push({ at, target: reference[1] as string });
  });
  return found;
}

/** GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, duplicates -1, -2. */
function headingIds(markdown: string): Set<string> {
  const ids = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of prose(markdown.replace(/`([^`]*)`/g, '$1'))) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const text = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    ids.add(count === 0 ? base : `${base}-${count}`);
  }
  return ids;
}

/** A file of the repository: its text (markdown), `''` (another file), or `undefined`. */
type Lookup = (path: string) => string | undefined;

const fromDisk: Lookup = (path) => {
  const absolute = join(root, path);
  if (!existsSync(absolute)) return undefined;
  return path.endsWith('.md') && !statSync(absolute).isDirectory()
    ? readFileSync(absolute, 'utf8')
    : '';
};

/** The broken relative links of one markdown file, as `file.md:line target: why`. */
function brokenLinks(lookup: Lookup, file: string, markdown: string): string[] {
  const broken: string[] = [];
  for (const { at, target } of links(file, markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, …
    const [path = '', fragment] = target.split('#');
    const resolved = path === '' ? file : normalize(join(dirname(file), decodeURI(path)));
    const text = resolved.startsWith('..') ? undefined : lookup(resolved);
    if (text === undefined) {
      broken.push(`${at} ${target}: ${resolved} does not exist`);
    } else if (fragment !== undefined && !headingIds(text).has(fragment)) {
      broken.push(`${at} ${target}: ${resolved} has no heading #${fragment}`);
    }
  }
  return broken;
}

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(join(root, 'docs'), { recursive: true }))
    .filter((path) => path.endsWith('.md') && !path.startsWith('api'))
    .map((path) => join('docs', path));
  return ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md', ...docs.sort()];
}

describe('links of the docs', () => {
  it('every relative link resolves, to a file and to a heading', async () => {
    const broken: string[] = [];
    const files = await markdownFiles();
    for (const file of files) {
      broken.push(...brokenLinks(fromDisk, file, readFileSync(join(root, file), 'utf8')));
    }
    expect(files.length).toBeGreaterThan(10);
    expect(broken).toEqual([]);
  });

  it("the README's links into docs/ point to files the package ships", () => {
    const { files } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      files: string[];
    };
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const intoDocs = links('README.md', readme)
      .map((link) => ({ ...link, path: normalize(link.target.split('#')[0] as string) }))
      .filter((link) => link.path.startsWith('docs/'));
    expect(intoDocs.length).toBeGreaterThan(5);
    const unshipped = intoDocs.filter(
      (link) => !files.some((entry) => link.path === entry || link.path.startsWith(`${entry}/`)),
    );
    expect(unshipped.map((link) => `${link.at} ${link.target}`)).toEqual([]);
  });

  it('the checker finds a missing file, a missing heading, and ignores code and comments', () => {
    const markdown = [
      '# Title', // 1
      '## Two words: `code`', // 2
      '[ok](#title) [ok](#two-words-code) [ok](other.md#part) [web](https://example.com/x)', // 3
      '[gone](missing.md) [bad anchor](#nope) [bad anchor](other.md#title)', // 4
      '`[in code](missing.md)`', // 5
      '<!-- [in a comment](missing.md) -->', // 6
      '```', // 7
      '[in a fence](missing.md)', // 8
      '```', // 9
    ].join('\n');
    const files = new Map([
      ['docs/page.md', markdown],
      ['docs/other.md', '# Part'],
    ]);
    expect(brokenLinks((path) => files.get(path), 'docs/page.md', markdown)).toEqual([
      'docs/page.md:4 missing.md: docs/missing.md does not exist',
      'docs/page.md:4 #nope: docs/page.md has no heading #nope',
      'docs/page.md:4 other.md#title: docs/other.md has no heading #title',
    ]);
  });
});
