/**
 * Mutation testing, one source file per Stryker run, with a summary table.
 *
 *   MONGO_ATOMICS_TEST_BACKEND=offline npm run mutation -- src/values.ts src/op-log.ts
 *
 * Without file arguments every `src/*.ts` except the re-exporting `src/index.ts` is mutated,
 * smallest first. Each file gets its own Stryker run (stryker.config.mjs: the driver-7 tests of
 * vitest.stryker.config.ts, per-test coverage, one test process), its JSON report in
 * `reports/mutation/<file>.json`, and a row in `reports/mutation/summary.md`:
 * mutants, killed, survived, no coverage, timeout, equivalent, time, and two scores:
 *
 * - `score`: Stryker's, (killed + timeout) / (all valid mutants).
 * - `score (non-equivalent)`: the same with the mutants listed in
 *   scripts/mutation-equivalents.json taken out of the denominator. Each entry there names the
 *   file, the mutator, the source line as written (trimmed), the mutant's column on it and the
 *   replacement (line numbers shift with every edit; the text does not), with the reason the
 *   mutant cannot change behaviour; docs/reliability.md ("Mutation testing") explains each one.
 *   An entry that matches no surviving mutant is reported as stale.
 *
 * `npm run mutation -- --report [files]` rebuilds the summary from the reports already written.
 *
 * `npm run mutation -- --survivors [files]` is the second pass: it runs Stryker again on the
 * undetected and timed-out mutants of each file's last report only (their source ranges, as Stryker's
 * `file:line:column-line:column` mutate patterns), and writes their new status into that
 * report. Only valid while the source file is unchanged since the report (checked: the
 * report's copy of the source must equal the file) and tests were only added: a mutant killed
 * before is then still killed, as no test that killed it was removed. The summary's time is
 * the second pass's. `npm run mutation -- --merge-survivors [files]` merges a second pass whose
 * run stopped after Stryker wrote its report.
 *
 * Not part of `npm test` or CI: a small file takes minutes, a large one much longer.
 *
 * Why the Stryker class is loaded from its file: Stryker 10 declares Node >= 22 and its CLI
 * refuses older versions at import time; the project supports Node >= 20.19 and Stryker's
 * mutation run itself works on it. On Node 22+ this is the same class the CLI uses.
 *
 * Stryker mutates a copy of the project in `.stryker-tmp/` (never the working tree); the script
 * still checks that `src/` is byte-identical after each run and fails loudly if not.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REPORTS = path.join(ROOT, 'reports', 'mutation');
const EQUIVALENTS = path.join(ROOT, 'scripts', 'mutation-equivalents.json');
const CHILD_FLAG = '--single-file';

const REPORT_FLAG = '--report';
const SURVIVORS_FLAG = '--survivors';
const MERGE_FLAG = '--merge-survivors';
/**
 * Statuses a second pass does not revisit. Timeouts are revisited: on a loaded machine a slow
 * test times out without any mutant hanging it, and a timeout counts as detected.
 */
const SETTLED = new Set(['Killed', 'CompileError', 'Ignored']);

if (process.argv[2] === CHILD_FLAG) {
  await runOne(process.argv[3], process.argv[4], process.argv[5]);
} else if (process.argv[2] === REPORT_FLAG) {
  // Rebuild the summary from the JSON reports already written (e.g. after editing the
  // equivalents list), without running Stryker; times are not known then.
  await main(process.argv.slice(3), { run: false });
} else if (process.argv[2] === MERGE_FLAG) {
  // Merge a second pass that ran but was not merged (the run stopped after Stryker finished).
  await main(process.argv.slice(3), { run: false, mergeOnly: true });
} else if (process.argv[2] === SURVIVORS_FLAG) {
  await main(process.argv.slice(3), { run: true, survivorsOnly: true });
} else {
  await main(process.argv.slice(2), { run: true });
}

/**
 * In a child process: one Stryker run mutating `file` (or only the given mutate patterns, a
 * JSON array), its JSON report written to `report`.
 */
async function runOne(file, report, patterns) {
  const pkg = fileURLToPath(import.meta.resolve('@stryker-mutator/core/package.json'));
  const strykerFile = path.join(path.dirname(pkg), 'dist', 'src', 'stryker.js');
  const { Stryker } = await import(pathToFileURL(strykerFile).href);
  await new Stryker({
    mutate: patterns === undefined ? [file] : JSON.parse(patterns),
    jsonReporter: { fileName: report },
    reporters: ['clear-text', 'json', 'progress'],
  }).runMutationTest();
}

/** Every file under src/ (src/testing/ included), by path relative to src/, sorted. */
function srcFiles() {
  return readdirSync(path.join(ROOT, 'src'), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(path.join(ROOT, 'src'), path.join(entry.parentPath, entry.name)))
    .sort();
}

function srcDigest() {
  const hash = createHash('sha256');
  for (const name of srcFiles()) {
    hash.update(name);
    hash.update(readFileSync(path.join(ROOT, 'src', name)));
  }
  return hash.digest('hex');
}

function defaultFiles() {
  return srcFiles()
    .filter((name) => name.endsWith('.ts') && !name.endsWith('index.ts'))
    .map((name) => `src/${name}`)
    .sort((a, b) => statSync(path.join(ROOT, a)).size - statSync(path.join(ROOT, b)).size);
}

function loadEquivalents() {
  try {
    return JSON.parse(readFileSync(EQUIVALENTS, 'utf8'));
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
}

/** The trimmed source line a mutant starts on: the stable part of its identity across edits. */
function lineOf(source, mutant) {
  return (source.split('\n')[mutant.location.start.line - 1] ?? '').trim();
}

function matches(entry, file, source, mutant) {
  return (
    entry.file === file &&
    entry.mutator === mutant.mutatorName &&
    entry.line === lineOf(source, mutant) &&
    entry.column === mutant.location.start.column &&
    entry.replacement === mutant.replacement
  );
}

function summarise(file, report, equivalents) {
  const entry = Object.values(report.files)[0];
  const rows = {
    mutants: 0,
    killed: 0,
    survived: 0,
    noCoverage: 0,
    timeout: 0,
    equivalent: 0,
    errors: 0,
  };
  const survivors = [];
  const used = new Set();
  for (const mutant of entry.mutants) {
    if (mutant.status === 'CompileError' || mutant.status === 'Ignored') continue;
    // As in Stryker's score: a mutant that crashed the test process (e.g. an endless loop
    // filling an array until V8 aborts) is neither killed nor survived. Listed apart.
    if (mutant.status === 'RuntimeError') {
      rows.errors += 1;
      survivors.push(
        `${file}:${mutant.location.start.line}:${mutant.location.start.column} RuntimeError (not in the score) ${mutant.mutatorName}: ` +
          `\`${lineOf(entry.source, mutant)}\` -> \`${mutant.replacement}\``,
      );
      continue;
    }
    rows.mutants += 1;
    if (mutant.status === 'Killed') rows.killed += 1;
    else if (mutant.status === 'Timeout') rows.timeout += 1;
    else {
      const equivalent = equivalents.find((e) => matches(e, file, entry.source, mutant));
      if (equivalent !== undefined) {
        rows.equivalent += 1;
        used.add(equivalent);
        continue;
      }
      if (mutant.status === 'Survived') rows.survived += 1;
      else if (mutant.status === 'NoCoverage') rows.noCoverage += 1;
      else rows.survived += 1; // anything new: count against the score
      survivors.push(
        `${file}:${mutant.location.start.line}:${mutant.location.start.column} ${mutant.status} ${mutant.mutatorName}: ` +
          `\`${lineOf(entry.source, mutant)}\` -> \`${mutant.replacement}\``,
      );
    }
  }
  const detected = rows.killed + rows.timeout;
  rows.score = percent(detected, rows.mutants);
  rows.nonEquivalentScore = percent(detected, rows.mutants - rows.equivalent);
  const stale = equivalents.filter((e) => e.file === file && !used.has(e));
  return { rows, survivors, stale };
}

function percent(part, whole) {
  return whole === 0 ? 'n/a' : `${((100 * part) / whole).toFixed(1)}%`;
}

/** Same mutant: same mutator, same place, same replacement. */
function sameMutant(a, b) {
  return (
    a.mutatorName === b.mutatorName &&
    a.replacement === b.replacement &&
    a.location.start.line === b.location.start.line &&
    a.location.start.column === b.location.start.column &&
    a.location.end.line === b.location.end.line &&
    a.location.end.column === b.location.end.column
  );
}

/**
 * The Stryker mutate patterns of the undetected (or timed-out), non-equivalent mutants of `file`'s report
 * (report columns are 1-based, the patterns' 0-based), or [] when there are none.
 */
function survivorPatterns(file, report, equivalents) {
  const entry = Object.values(report.files)[0];
  const source = readFileSync(path.join(ROOT, file), 'utf8');
  if (entry.source !== source) {
    throw new Error(
      `${file} changed since its last report: --survivors needs the source of the first pass; run the whole file again`,
    );
  }
  return entry.mutants
    .filter((m) => !SETTLED.has(m.status))
    .filter((m) => !equivalents.some((e) => matches(e, file, entry.source, m)))
    .map(
      ({ location: { start, end } }) =>
        `${file}:${start.line}:${start.column - 1}-${end.line}:${end.column - 1}`,
    );
}

/**
 * Writes the statuses of the second pass into the first pass's report (the equivalent mutants,
 * not run again, keep theirs).
 */
function mergeSurvivors(file, report, rerun, equivalents) {
  const entry = Object.values(report.files)[0];
  const again = Object.values(rerun.files)[0]?.mutants ?? [];
  for (const mutant of entry.mutants) {
    if (SETTLED.has(mutant.status)) continue;
    const fresh = again.find((m) => sameMutant(m, mutant));
    if (fresh === undefined) {
      if (equivalents.some((e) => matches(e, file, entry.source, mutant))) continue;
      throw new Error(`mutant ${mutant.id} was not run again`);
    }
    Object.assign(mutant, {
      status: fresh.status,
      killedBy: fresh.killedBy,
      coveredBy: fresh.coveredBy,
      statusReason: fresh.statusReason,
      testsCompleted: fresh.testsCompleted,
    });
  }
  return report;
}

async function main(args, { run, survivorsOnly = false, mergeOnly = false }) {
  const files = args.length > 0 ? args : defaultFiles();
  if (run && process.env.MONGO_ATOMICS_TEST_BACKEND === undefined) {
    console.warn('MONGO_ATOMICS_TEST_BACKEND is not set; "offline" is the intended backend.');
  }
  mkdirSync(REPORTS, { recursive: true });
  const equivalents = loadEquivalents();
  const results = [];
  let failed = false;
  for (const file of files) {
    const report = path.join(REPORTS, `${file.replaceAll('/', '_')}.json`);
    if (mergeOnly) {
      const merged = mergeSurvivors(
        file,
        JSON.parse(readFileSync(report, 'utf8')),
        JSON.parse(readFileSync(`${report}.survivors.json`, 'utf8')),
        equivalents,
      );
      writeFileSync(report, JSON.stringify(merged));
    }
    if (!run) {
      const summary = summarise(file, JSON.parse(readFileSync(report, 'utf8')), equivalents);
      results.push({ file, seconds: undefined, ...summary });
      continue;
    }
    const patterns = survivorsOnly
      ? survivorPatterns(file, JSON.parse(readFileSync(report, 'utf8')), equivalents)
      : undefined;
    const target = survivorsOnly ? `${report}.survivors.json` : report;
    const before = srcDigest();
    const started = Date.now();
    const child =
      patterns?.length === 0
        ? { status: 0 }
        : spawnSync(
            process.execPath,
            [
              fileURLToPath(import.meta.url),
              CHILD_FLAG,
              file,
              target,
              ...(patterns === undefined ? [] : [JSON.stringify(patterns)]),
            ],
            {
              cwd: ROOT,
              stdio: 'inherit',
            },
          );
    const seconds = Math.round((Date.now() - started) / 1000);
    if (srcDigest() !== before) {
      throw new Error(`src/ changed during the mutation run of ${file}: check git status now`);
    }
    if (child.status !== 0) {
      console.error(`Stryker failed on ${file} (exit ${child.status})`);
      failed = true;
      continue;
    }
    if (patterns !== undefined && patterns.length > 0) {
      const merged = mergeSurvivors(
        file,
        JSON.parse(readFileSync(report, 'utf8')),
        JSON.parse(readFileSync(target, 'utf8')),
        equivalents,
      );
      writeFileSync(report, JSON.stringify(merged));
    }
    const summary = summarise(file, JSON.parse(readFileSync(report, 'utf8')), equivalents);
    results.push({ file, seconds, ...summary });
  }
  const table = [
    '| file | mutants | killed | survived | no coverage | timeout | equivalent | runtime errors | score | score (non-equivalent) | time |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      ({ file, seconds, rows: r }) =>
        `| ${file} | ${r.mutants} | ${r.killed} | ${r.survived} | ${r.noCoverage} | ${r.timeout} | ` +
        `${r.equivalent} | ${r.errors} | ${r.score} | ${r.nonEquivalentScore} | ${seconds === undefined ? '–' : `${seconds} s`} |`,
    ),
  ];
  const lines = [...table, ''];
  const survivors = results.flatMap((r) => r.survivors);
  if (survivors.length > 0)
    lines.push('Undetected, not listed as equivalent:', '', ...survivors.map((s) => `- ${s}`), '');
  const stale = results.flatMap((r) => r.stale);
  if (stale.length > 0) {
    lines.push(
      'Stale equivalents (no such surviving mutant):',
      '',
      ...stale.map((e) => `- ${e.file}: \`${e.line}\` -> \`${e.replacement}\``),
      '',
    );
  }
  const text = lines.join('\n');
  writeFileSync(path.join(REPORTS, 'summary.md'), text);
  console.log(`\n${text}`);
  if (failed) process.exitCode = 1;
}
