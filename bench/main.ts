/**
 * `npm run bench`: the benchmark suite of issue 11. Numbers are printed and written, never
 * asserted: speed targets live here, not in timed tests.
 *
 *   npm run bench                    full run (≈10 min on 2 cores), writes docs/benchmarks.md
 *   npm run bench -- --quick         every case briefly (CI: the suite still runs); stdout only
 *   --out <file>                     write the markdown there instead
 *   --json <file>                    also write the results as JSON (for --baseline later)
 *   --baseline <file.json>           add a "before → after" column from an earlier --json
 *   --only <sections>                comma-separated subset: roundTrips,cpu,driver,scaling,contention
 *   --from <file.json>               measure nothing: render the markdown of an earlier --json
 *                                    (with --baseline: a before/after report of two runs)
 *
 * The backend is chosen as the tests choose it (tests/support/backend.ts): MONGODB_URI, else a
 * mongodb-memory-server replica set, else the offline server; MONGO_ATOMICS_TEST_BACKEND=
 * uri|memory-server|offline forces one.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { startBenchBackend } from './backend.js';
import { flashSale, idempotencyBurst, transfers } from './cases/contention.js';
import { cpuPerCall } from './cases/cpu.js';
import { driverRatios } from './cases/driver.js';
import { roundTrips } from './cases/round-trips.js';
import { scaling } from './cases/scaling.js';
import { type BenchContext, countCommands } from './context.js';
import { fmt, markdown, type Results, targets } from './report.js';

const SECTIONS = ['roundTrips', 'cpu', 'driver', 'scaling', 'contention'] as const;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    json: { type: 'string' },
    baseline: { type: 'string' },
    only: { type: 'string' },
    from: { type: 'string' },
  },
});
const only = new Set(args.only?.split(',') ?? SECTIONS);
for (const name of only) {
  if (!(SECTIONS as readonly string[]).includes(name)) {
    console.error(`--only: unknown section "${name}" (${SECTIONS.join(', ')})`);
    process.exit(2);
  }
}
const root = resolve(import.meta.dirname, '..');
const baseline =
  args.baseline === undefined
    ? undefined
    : (JSON.parse(readFileSync(args.baseline, 'utf8')) as Results);

if (args.from !== undefined) {
  const earlier = JSON.parse(readFileSync(args.from, 'utf8')) as Results;
  const text = markdown(earlier, baseline);
  if (args.out === undefined) console.log(text);
  else {
    write(args.out, text);
    console.log(`wrote ${args.out}`);
  }
  process.exit(0);
}

const notes: string[] = [];
const backend = await startBenchBackend(notes);
for (const note of notes) console.log(`note: ${note}`);
console.log(`MongoDB: ${backend.description} (${backend.kind})`);

const started = performance.now();
const client = new MongoClient(backend.uri, { monitorCommands: true, maxPoolSize: 100 });
try {
  await client.connect();
  const db = client.db(`mongo_atomics_bench_${process.pid}`);
  const quick = args.quick;
  const ctx: BenchContext = {
    quick,
    client,
    db,
    commands: countCommands(client),
    size: (q, full) => (quick ? q : full),
    progress: (message) =>
      console.error(`[${((performance.now() - started) / 1000).toFixed(0)} s] ${message}`),
  };
  const build = (await client.db('admin').command({ buildInfo: 1 })) as {
    version?: string;
    gitVersion?: string;
  };

  const run = async <T>(
    section: (typeof SECTIONS)[number],
    fn: () => Promise<T>,
    empty: T,
  ): Promise<T> => (only.has(section) ? fn() : empty);
  const rt = await run('roundTrips', () => roundTrips(ctx), []);
  const cpu = await run('cpu', () => cpuPerCall(ctx), []);
  const drv = await run('driver', () => driverRatios(ctx), []);
  const scl = await run('scaling', () => scaling(ctx), []);
  const tr = await run('contention', () => transfers(ctx), []);
  const fs = await run('contention', () => flashSale(ctx), []);
  const idem = await run('contention', () => idempotencyBurst(ctx), []);
  await db.dropDatabase();

  const measured = {
    roundTrips: rt,
    cpu,
    driver: drv,
    scaling: scl,
    transfers: tr,
    flashSale: fs,
    idempotency: idem,
  };
  const require = createRequire(import.meta.url);
  const results: Results = {
    format: 1,
    meta: {
      date: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
      cores: os.availableParallelism(),
      node: process.version,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      backend: { kind: backend.kind, description: backend.description },
      server: {
        version: build.version ?? 'unknown',
        ...(build.gitVersion ? { gitVersion: build.gitVersion } : {}),
      },
      driver: (require('mongodb/package.json') as { version: string }).version,
      library: (
        JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string }
      ).version,
      gitCommit: gitCommit(),
      durationSec: (performance.now() - started) / 1000,
    },
    ...measured,
    // The targets need every section; a partial run (--only) reports none.
    targets: only.size === SECTIONS.length ? targets(measured) : [],
  };

  const text = markdown(results, baseline);
  const out = args.out ?? (quick ? undefined : resolve(root, 'docs/benchmarks.md'));
  if (out === undefined) console.log(text);
  else {
    write(out, text);
    console.log(`wrote ${out}`);
    for (const t of results.targets) {
      console.log(
        `${t.met ? 'met    ' : 'NOT MET'}  ${t.statement}: ${fmt(t.value)} ${t.unit} (${t.detail})`,
      );
    }
  }
  if (args.json !== undefined) {
    write(args.json, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`wrote ${args.json}`);
  }
  console.log(`MongoDB: ${backend.description}; ${fmt(results.meta.durationSec)} s`);
} finally {
  await client.close();
  await backend.stop();
}

function write(file: string, text: string): void {
  mkdirSync(dirname(resolve(file)), { recursive: true });
  writeFileSync(file, text);
}

function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    return dirty === '' ? sha : `${sha} (src modified)`;
  } catch {
    return 'unknown';
  }
}
