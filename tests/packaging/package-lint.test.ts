/**
 * The packed tarball as the ecosystem's package linters see it: Are The Types Wrong (every entry
 * point resolves to matching types and JavaScript under node10, node16 from CJS and ESM, and
 * bundler resolution) and publint in strict mode (exports, files, fields). A problem either
 * finds fails the test with its report.
 *
 * Runs in the driver7 project only (vitest.config.ts).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FreshProject, freshProject, root, run } from './pack.js';

let project: FreshProject;
beforeAll(async () => {
  project = await freshProject([]);
}, 180_000);
afterAll(async () => {
  if (project !== undefined) await rm(project.stage, { recursive: true, force: true });
});

/** Runs a linter's bin; its output, and whether it exited 0. */
async function lint(bin: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  return run(join(root, 'node_modules/.bin', bin), args, { cwd: project.stage }).then(
    ({ stdout, stderr }) => ({ ok: true, output: `${stdout}${stderr}` }),
    (error: { stdout?: string; stderr?: string }) => ({
      ok: false,
      output: `${error.stdout ?? ''}${error.stderr ?? ''}`,
    }),
  );
}

describe('the packed tarball', () => {
  it('attw finds no problem for "mongo-atomics" and "mongo-atomics/testing" under any resolution', async () => {
    const { ok, output } = await lint('attw', [project.tarball, '--format', 'json']);
    const report = JSON.parse(output) as {
      analysis: { entrypoints: Record<string, unknown> };
      problems: Record<string, unknown>;
    };
    expect(report.problems, output).toEqual({});
    expect(Object.keys(report.analysis.entrypoints).sort()).toEqual([
      '.',
      './package.json',
      './testing',
    ]);
    expect(ok).toBe(true);
  }, 120_000);

  it('publint --strict finds nothing', async () => {
    const { ok, output } = await lint('publint', ['run', project.tarball, '--strict']);
    expect(output).toContain('All good!');
    expect(ok, output).toBe(true);
  }, 120_000);
});
