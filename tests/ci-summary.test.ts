/**
 * The CI summary (.ci/summary.mjs): behavioural tests counted apart from type-only tests
 * (`*.types.test.ts`) and naive demonstrations (titles starting `naive:`), and the overall
 * `N passed, N failed` line printed last. Run as CI runs it, on a report in vitest's JSON shape.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const script = resolve(import.meta.dirname, '../.ci/summary.mjs');

async function summarise(report: unknown): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'ci-summary-'));
  try {
    const file = join(dir, 'vitest.json');
    await writeFile(file, JSON.stringify(report));
    const { stdout } = await run(process.execPath, [script, file]);
    return stdout.trimEnd().split('\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const test = (title: string, status: string) => ({ title, status });

describe('CI summary', () => {
  it('splits behavioural, type-only and naive-demonstration tests; the overall line stays last', async () => {
    const lines = await summarise({
      numPassedTests: 7,
      numFailedTests: 2,
      numPendingTests: 1,
      numTodoTests: 0,
      testResults: [
        {
          name: '/repo/tests/claim-once.test.ts',
          assertionResults: [
            test('naive: "read isPaid, then set it" fulfils twice', 'passed'),
            test('claimOnce: exactly one delivery claims', 'passed'),
            test('claimOnce: a naive: prefix only counts at the start', 'failed'),
            test('skipped one', 'skipped'),
          ],
        },
        {
          name: '/repo/tests/claim-once.types.test.ts',
          assertionResults: [
            test('narrows on outcome', 'passed'),
            test('naive: in a types file is type-only', 'passed'),
          ],
        },
        {
          name: '/repo/tests/conformance/race-harness.test.ts',
          assertionResults: [
            test('naive: 50 read-then-$set increments lose updates', 'failed'),
            test('50 $inc increments are all applied', 'passed'),
            test('types.test.ts in a title is not a types file', 'passed'),
          ],
        },
      ],
    });
    expect(lines).toEqual([
      'behavioural: 3 passed, 1 failed; type-only: 2 passed, 0 failed; naive demonstrations: 1 passed, 1 failed',
      '7 passed, 2 failed, 1 skipped',
    ]);
  });

  it('without skipped tests the last line is exactly "N passed, N failed"', async () => {
    const lines = await summarise({
      numPassedTests: 1,
      numFailedTests: 0,
      numPendingTests: 0,
      numTodoTests: 0,
      testResults: [{ name: '/r/tests/a.test.ts', assertionResults: [test('a', 'passed')] }],
    });
    expect(lines.at(-1)).toBe('1 passed, 0 failed');
    expect(lines).toHaveLength(2);
  });
});
