/**
 * The results of a run (JSON, for before/after comparisons), the targets of issue 11 computed
 * from them, and the markdown report (docs/benchmarks.md).
 */

import type { FlashSaleRow, IdempotencyBurstRow, TransferRow } from './cases/contention.js';
import type { CpuRow } from './cases/cpu.js';
import type { DriverRow } from './cases/driver.js';
import type { RoundTripRow } from './cases/round-trips.js';
import type { ScalingRow } from './cases/scaling.js';
import type { Spread } from './stats.js';

export interface Meta {
  readonly date: string;
  readonly mode: 'quick' | 'full';
  readonly cpu: string;
  readonly cores: number;
  readonly node: string;
  readonly os: string;
  readonly backend: { readonly kind: string; readonly description: string };
  readonly server: { readonly version: string; readonly gitVersion?: string };
  readonly driver: string;
  readonly library: string;
  readonly gitCommit: string;
  readonly durationSec: number;
}

export interface Results {
  readonly format: 1;
  readonly meta: Meta;
  readonly roundTrips: readonly RoundTripRow[];
  readonly cpu: readonly CpuRow[];
  readonly driver: readonly DriverRow[];
  readonly scaling: readonly ScalingRow[];
  readonly transfers: readonly TransferRow[];
  readonly flashSale: readonly FlashSaleRow[];
  readonly idempotency: readonly IdempotencyBurstRow[];
  readonly targets: readonly Target[];
}

export interface Target {
  readonly id: string;
  readonly statement: string;
  /** The measured figure the verdict is taken from. */
  readonly value: number;
  readonly unit: string;
  readonly met: boolean;
  readonly detail: string;
}

const find = <T extends { readonly id: string }>(rows: readonly T[], id: string): T => {
  const row = rows.find((r) => r.id === id);
  if (row === undefined) throw new Error(`report: no result ${id}`);
  return row;
};

/** The targets of issue 11, each judged from this run's measurements. */
export function targets(r: Omit<Results, 'targets' | 'meta' | 'format'>): Target[] {
  const iop = find(r.scaling, 'incrementOrPushArrayItem/1000');
  const t32 = find(r.transfers, 'transfers/32');
  const sale = find(r.flashSale, 'flash/guardedDecrement');
  const dup = find(r.roundTrips, 'withIdempotencyKey/duplicate (replayed)/library');
  const burst = find(r.idempotency, 'idempotency/withIdempotencyKey duplicate');
  const list: Target[] = [
    {
      id: 'incrementOrPush-1000',
      statement: 'incrementOrPushArrayItem at 1 000 elements ≤ 1.3× the time of the naive two-step',
      value: iop.ratio.median,
      unit: '×',
      met: iop.ratio.median <= 1.3,
      detail: `IQR ${range(iop.ratio)}`,
    },
    {
      id: 'transactions-32-commits',
      statement: 'transfers at 32 clients: withRetryingTransaction ≥ 1.2× the driver’s commits/s',
      value: t32.commitsRatio.median,
      unit: '×',
      met: t32.commitsRatio.median >= 1.2,
      detail: `IQR ${range(t32.commitsRatio)}`,
    },
    {
      id: 'transactions-32-attempts',
      statement: 'transfers at 32 clients: ≤ 2 attempts per commit',
      value: t32.libraryAttemptsPerCommit,
      unit: 'attempts/commit',
      met: t32.libraryAttemptsPerCommit <= 2,
      detail: `driver: ${fmt(t32.driverAttemptsPerCommit)}`,
    },
    {
      id: 'transactions-32-p99',
      statement:
        'transfers at 32 clients: p99 latency no worse than the driver’s (median per-round p99 ratio ≤ 1)',
      value: t32.p99Ratio.median,
      unit: '×',
      met: t32.p99Ratio.median <= 1,
      detail: `p99 ${fmt(t32.libraryP99)} ms vs ${fmt(t32.driverP99)} ms`,
    },
  ];
  for (const clients of [1, 8]) {
    const t = find(r.transfers, `transfers/${clients}`);
    list.push({
      id: `transactions-${clients}-no-loss`,
      statement: `transfers at ${clients} client${clients === 1 ? '' : 's'}: no loss against the driver (median commits/s ratio ≥ 0.95, the noise of a shared machine)`,
      value: t.commitsRatio.median,
      unit: '×',
      met: t.commitsRatio.median >= 0.95,
      detail: `IQR ${range(t.commitsRatio)}`,
    });
  }
  const broken = r.transfers.reduce(
    (n, t) => n + t.libraryInvariantBroken + t.driverInvariantBroken,
    0,
  );
  list.push(
    {
      id: 'transactions-invariant',
      statement: 'transfers: the total balance is unchanged after every round, both runners',
      value: broken,
      unit: 'rounds broken',
      met: broken === 0,
      detail: `failed transfers: library ${r.transfers.reduce((n, t) => n + t.libraryFailed, 0)}, driver ${r.transfers.reduce((n, t) => n + t.driverFailed, 0)}`,
    },
    {
      id: 'flash-sale-sold-out',
      statement:
        'sold-out flash sale: guardedDecrement ≥ 0.9× the requests/s of the raw guarded findOneAndUpdate',
      value: sale.ratio.median,
      unit: '×',
      met: sale.ratio.median >= 0.9,
      detail: `IQR ${range(sale.ratio)}; oversells ${sale.oversells}`,
    },
    {
      id: 'idempotency-duplicate',
      statement: 'withIdempotencyKey duplicate (replayed): 1 round trip',
      value: dup.commands,
      unit: 'round trips',
      met: dup.commands === 1 && burst.roundTripsPerRequest === 1,
      detail: `${dup.names.join(', ')}; burst: ${fmt(burst.roundTripsPerRequest)} per request`,
    },
  );
  return list;
}

// ---------------------------------------------------------------- formatting

export function fmt(value: number): string {
  if (!Number.isFinite(value) || Number.isInteger(value)) return value.toLocaleString('en-US');
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}
/** `find, update ×3, commitTransaction`: consecutive repeats folded. */
function runs(names: readonly string[]): string {
  const parts: string[] = [];
  for (let i = 0; i < names.length; ) {
    let j = i;
    while (names[j] === names[i]) j += 1;
    parts.push(j - i === 1 ? String(names[i]) : `${names[i]} ×${j - i}`);
    i = j;
  }
  return parts.join(', ');
}
const range = (s: Spread) => `${fmt(s.q1)}–${fmt(s.q3)}`;
const x = (s: Spread) => `${fmt(s.median)}×`;
const minmax = (s: Spread) => `${fmt(s.min)}–${fmt(s.max)}`;

interface Table {
  readonly head: readonly string[];
  readonly rows: readonly {
    readonly id: string;
    readonly cells: readonly string[];
    readonly metric: number;
  }[];
}

/** Markdown table; with a baseline, a last column "before → after" of each row's metric. */
function table(t: Table, before?: ReadonlyMap<string, number>): string {
  const head = before === undefined ? t.head : [...t.head, 'before → after'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const row of t.rows) {
    const cells = [...row.cells];
    if (before !== undefined) {
      const old = before.get(row.id);
      cells.push(
        old === undefined ? `(new) → ${fmt(row.metric)}` : `${fmt(old)} → ${fmt(row.metric)}`,
      );
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The tables of a run, with the metric each row is compared on. */
function tables(r: Results): Record<string, Table> {
  return {
    roundTrips: {
      head: ['primitive', 'path', 'pattern', 'round trips', 'commands'],
      rows: r.roundTrips.map((row) => ({
        id: row.id,
        metric: row.commands,
        cells: [
          `\`${row.primitive}\``,
          row.path,
          row.pattern,
          String(row.commands),
          runs(row.names),
        ],
      })),
    },
    cpu: {
      head: [
        'primitive',
        'path',
        'library µs/call',
        'stub direct µs/call',
        'own µs',
        'ratio',
        'IQR',
        'min–max',
      ],
      rows: r.cpu.map((row) => ({
        id: row.id,
        metric: row.libraryUs.median,
        cells: [
          `\`${row.primitive}\``,
          row.path,
          fmt(row.libraryUs.median),
          fmt(row.directUs.median),
          fmt(row.ownUs.median),
          x(row.ratio),
          range(row.ratio),
          minmax(row.ratio),
        ],
      })),
    },
    driver: {
      head: [
        'primitive',
        'raw driver call',
        'clients',
        'ops/s ratio',
        'IQR',
        'min–max',
        'library ops/s',
        'raw ops/s',
      ],
      rows: r.driver.map((row) => ({
        id: row.id,
        metric: row.ratio.median,
        cells: [
          `\`${row.primitive}\``,
          row.raw,
          String(row.clients),
          x(row.ratio),
          range(row.ratio),
          minmax(row.ratio),
          fmt(row.libraryOpsPerSec.median),
          fmt(row.rawOpsPerSec.median),
        ],
      })),
    },
    scaling: {
      head: ['curve', 'size', 'time ratio', 'IQR', 'min–max', 'library ms/op', 'alternative ms/op'],
      rows: r.scaling.map((row) => ({
        id: row.id,
        metric: row.ratio.median,
        cells: [
          row.curve === 'incrementOrPushArrayItem'
            ? '`incrementOrPushArrayItem` vs naive two-step (array size)'
            : '`guardedDecrementAll` vs k findOneAndUpdate in withTransaction (k)',
          String(row.size),
          x(row.ratio),
          range(row.ratio),
          minmax(row.ratio),
          fmt(row.libraryMsPerOp.median),
          fmt(row.alternativeMsPerOp.median),
        ],
      })),
    },
    transfers: {
      head: [
        'clients',
        'commits/s ratio',
        'IQR',
        'attempts/commit (library / driver)',
        'p50 ms (library / driver)',
        'p99 ms (library / driver)',
        'failed (library / driver)',
        'invariant broken (rounds)',
      ],
      rows: r.transfers.map((row) => ({
        id: row.id,
        metric: row.commitsRatio.median,
        cells: [
          String(row.clients),
          x(row.commitsRatio),
          range(row.commitsRatio),
          `${fmt(row.libraryAttemptsPerCommit)} / ${fmt(row.driverAttemptsPerCommit)}`,
          `${fmt(row.libraryP50)} / ${fmt(row.driverP50)}`,
          `${fmt(row.libraryP99)} / ${fmt(row.driverP99)}`,
          `${row.libraryFailed} / ${row.driverFailed}`,
          `${row.libraryInvariantBroken} / ${row.driverInvariantBroken}`,
        ],
      })),
    },
    flashSale: {
      head: [
        'variant',
        'units / requests / clients',
        'req/s ratio vs raw',
        'IQR',
        'min–max',
        'req/s',
        'oversells (all rounds)',
      ],
      rows: r.flashSale.map((row) => ({
        id: row.id,
        metric: row.ratio.median,
        cells: [
          row.variant,
          `${row.units} / ${row.requests} / ${row.clients}`,
          x(row.ratio),
          range(row.ratio),
          minmax(row.ratio),
          fmt(row.requestsPerSec.median),
          `${row.oversells} in ${row.rounds} rounds`,
        ],
      })),
    },
    idempotency: {
      head: [
        'variant',
        'requests / clients',
        'round trips per request',
        'req/s ratio vs raw',
        'IQR',
        'req/s',
      ],
      rows: r.idempotency.map((row) => ({
        id: row.id,
        metric: row.ratio.median,
        cells: [
          row.variant,
          `${row.requests} / ${row.clients}`,
          fmt(row.roundTripsPerRequest),
          x(row.ratio),
          range(row.ratio),
          fmt(row.requestsPerSec.median),
        ],
      })),
    },
    targets: {
      head: ['target', 'measured', 'met', 'detail'],
      rows: r.targets.map((t) => ({
        id: t.id,
        metric: t.value,
        cells: [
          t.statement,
          `${fmt(t.value)}${t.unit === '×' ? '×' : ` ${t.unit}`}`,
          t.met ? 'met' : '**not met**',
          t.detail,
        ],
      })),
    },
  };
}

export function markdown(r: Results, baseline?: Results): string {
  const now = tables(r);
  const old = baseline === undefined ? undefined : tables(baseline);
  const show = (name: string) => {
    const before = old?.[name];
    const map =
      before === undefined ? undefined : new Map(before.rows.map((row) => [row.id, row.metric]));
    return table(now[name] as Table, map);
  };
  const m = r.meta;
  const out = [
    '# Benchmarks',
    '',
    '<!-- Generated by `npm run bench` (bench/main.ts); do not edit by hand. -->',
    '',
    `- Date: ${m.date} (${m.mode} run, ${fmt(m.durationSec)} s)`,
    `- Machine: ${m.cpu}, ${m.cores} cores, Node ${m.node}, ${m.os}`,
    `- Server: ${m.backend.description} (${m.backend.kind}), version ${m.server.version}`,
    `- Driver: mongodb ${m.driver}; library: mongo-atomics ${m.library} at ${m.gitCommit}`,
    ...(baseline === undefined
      ? []
      : [
          `- Baseline: ${baseline.meta.date} at ${baseline.meta.gitCommit} (${baseline.meta.mode} run); the last column of each table is that run's figure → this run's (round trips, µs per call, or the median ratio)`,
        ]),
    '',
    '## How to read',
    '',
    'Absolute times on a shared 2-core machine are noise; the results are **ratios** against the',
    'alternative measured in the same run. Sections 3–5 run the variants in interleaved rounds',
    '(A, B, then B, A, …, after a warm-up round) and compute the ratio within each round; the',
    'table gives the median of those per-round ratios with their interquartile range (IQR) and',
    'min–max. A ratio of ops/s (or requests/s, commits/s) above 1 means the library is faster; a',
    'time ratio (section 4) below 1 means it is faster. Round trips are exact counts of the',
    'commands the driver sent (`commandStarted`), handshake and monitoring excluded. Section 2 times',
    'the library against a stub collection that replays replies recorded from the real driver, so',
    "it measures the library's own CPU work per call. The library measured is the package's build",
    '(tsup, ES modules, as published), not the sources through tsx, whose transform would about',
    'double its CPU per call; the offline test server runs from a bundle for the same reason. The',
    'offline server is much slower than mongod on large documents and on expressions; ratios',
    'involving big arrays or expression-heavy commands are specific to the server measured.',
    '',
    '## Targets of issue 11',
    '',
    show('targets'),
    '',
    '## 1. Round trips per primitive and path',
    '',
    'Library paths beside the naive pattern (read, check in JavaScript, write: unsafe under',
    'concurrency) and the hand-written safe pattern. guardedDecrementAll runs its own transaction',
    '(commit included); the naive all-or-nothing way is k findOneAndUpdate in a transaction + commit.',
    '',
    show('roundTrips'),
    '',
    '## 2. CPU per call (stub collection)',
    '',
    'Median µs per call (tinybench), library versus the same collection calls made directly on the',
    'stub; "own µs" is the difference: validation, building the command, reading the outcome.',
    '',
    show('cpu'),
    '',
    '## 3. Through the real driver: primitive versus the equivalent raw call',
    '',
    'Success paths; ratio of ops/s, primitive / raw call; 16 clients are 16 concurrent callers on',
    'one pooled MongoClient, each on its own document.',
    '',
    show('driver'),
    '',
    '## 4. Scaling curves',
    '',
    'Time per operation of the primitive / of the alternative (below 1: the primitive is faster).',
    '',
    show('scaling'),
    '',
    '## 5. Contention',
    '',
    '### Money transfers between 4 hot accounts',
    '',
    "withRetryingTransaction (default options) against the driver's session.withTransaction;",
    'attempts per commit are callback invocations / commits; p50/p99 are pooled over the rounds.',
    '',
    show('transfers'),
    '',
    '### Flash sale (one stock document, selling out)',
    '',
    show('flashSale'),
    '',
    '### Idempotency: duplicate burst on one completed key',
    '',
    show('idempotency'),
    '',
  ];
  return out.join('\n');
}
