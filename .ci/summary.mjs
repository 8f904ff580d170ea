// Prints the test summary from a vitest JSON report (`--reporter=json`), two lines:
//
//   behavioural: N passed, N failed; type-only: N passed, N failed; naive demonstrations: N passed, N failed
//   N passed, N failed[, N skipped]
//
// The last line counts every test and stays last (CI reads it). The first splits the count by
// the convention of docs/testing.md: tests in `*.types.test.ts` files are type-only; tests whose
// title starts with `naive:` demonstrate the naive pattern failing; every other test is
// behavioural, a test of the library's behaviour.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export function classify(fileName, title) {
  if (/\.types\.test\.[cm]?[jt]s$/.test(fileName)) return 'typeOnly';
  if (title.startsWith('naive:')) return 'naive';
  return 'behavioural';
}

export function summarise(report) {
  const counts = {
    behavioural: { passed: 0, failed: 0 },
    typeOnly: { passed: 0, failed: 0 },
    naive: { passed: 0, failed: 0 },
  };
  for (const file of report.testResults ?? []) {
    for (const test of file.assertionResults ?? []) {
      if (test.status !== 'passed' && test.status !== 'failed') continue;
      counts[classify(file.name, test.title)][test.status] += 1;
    }
  }
  const part = ({ passed, failed }) => `${passed} passed, ${failed} failed`;
  const skipped = report.numPendingTests + report.numTodoTests;
  return [
    `behavioural: ${part(counts.behavioural)}; type-only: ${part(counts.typeOnly)}; ` +
      `naive demonstrations: ${part(counts.naive)}`,
    `${report.numPassedTests} passed, ${report.numFailedTests} failed` +
      (skipped ? `, ${skipped} skipped` : ''),
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(summarise(JSON.parse(readFileSync(process.argv[2], 'utf8'))));
}
