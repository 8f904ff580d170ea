/**
 * The benchmark suite still runs, end to end: `npm run bench -- --quick` on the offline server
 * (its own, in a child process: MONGO_ATOMICS_TEST_BACKEND=offline), every section present with
 * numbers, and the figures that are contracts rather than timings checked: round-trip counts of
 * the paths that must not change, no oversell by the guarded variants of the flash sale, the
 * transfer invariant. No timing is asserted: benchmarks are not tests (issue 11).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Results } from '../bench/report.js';

const root = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'mongo-atomics-bench-'));
const mdFile = join(dir, 'benchmarks.md');
const jsonFile = join(dir, 'results.json');

let exitCode: number | null = null;
let output = '';
let markdown = '';
let results: Results;

beforeAll(async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, MONGO_ATOMICS_TEST_BACKEND: 'offline' };
  delete env.MONGODB_URI;
  const child = spawn(
    'npm',
    ['run', 'bench', '--', '--quick', '--out', mdFile, '--json', jsonFile],
    {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  exitCode = await new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  if (exitCode === 0) {
    markdown = readFileSync(mdFile, 'utf8');
    results = JSON.parse(readFileSync(jsonFile, 'utf8')) as Results;
  }
}, 240_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const finite = (value: number) =>
  expect(Number.isFinite(value), `${value} is a finite number`).toBe(true);
const commandsOf = (id: string): number => {
  const row = results.roundTrips.find((r) => r.id === id);
  if (row === undefined) throw new Error(`no round-trip row ${id}`);
  return row.commands;
};

describe('npm run bench -- --quick', () => {
  it('exits 0 on the offline server and says which backend it ran on', () => {
    expect(exitCode, output).toBe(0);
    expect(output).toContain('MongoDB: offline MongoDB-compatible test server');
    expect(results.meta.backend.kind).toBe('offline');
    expect(results.meta.mode).toBe('quick');
    expect(results.meta.server.version).toMatch(/^\d+\.\d+/);
    expect(results.meta.driver).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('writes every section of the report, each table with figures', () => {
    for (const heading of [
      '## Targets of issue 11',
      '## 1. Round trips per primitive and path',
      '## 2. CPU per call (stub collection)',
      '## 3. Through the real driver',
      '## 4. Scaling curves',
      '### Money transfers between 4 hot accounts',
      '### Flash sale',
      '### Idempotency: duplicate burst on one completed key',
    ]) {
      const at = markdown.indexOf(heading);
      expect(at, heading).toBeGreaterThanOrEqual(0);
      // The first table row after the heading (after the separator line) holds a number.
      const table = markdown
        .slice(at)
        .split('\n')
        .filter((line) => line.startsWith('|'));
      expect(table.length, heading).toBeGreaterThan(2);
      expect(table[2], heading).toMatch(/\d/);
    }
    expect(results.cpu.length).toBeGreaterThanOrEqual(10);
    for (const row of results.cpu) {
      finite(row.libraryUs.median);
      finite(row.ratio.median);
      expect(row.libraryUs.median).toBeGreaterThan(0);
    }
    expect(results.driver.map((r) => r.clients).sort()).toContain(16);
    for (const row of results.driver) finite(row.ratio.median);
    expect(
      results.scaling.filter((r) => r.curve === 'incrementOrPushArrayItem').map((r) => r.size),
    ).toEqual([1, 100, 1000, 5000]);
    expect(
      results.scaling.filter((r) => r.curve === 'guardedDecrementAll').map((r) => r.size),
    ).toEqual([1, 5, 20, 50, 100]);
    for (const row of results.scaling) finite(row.ratio.median);
    expect(results.transfers.map((r) => r.clients)).toEqual([1, 8, 32]);
    for (const row of results.transfers) {
      finite(row.commitsRatio.median);
      finite(row.libraryAttemptsPerCommit);
      finite(row.driverP99);
    }
    for (const row of [...results.flashSale, ...results.idempotency]) finite(row.ratio.median);
  });

  it('computes every target of issue 11 from the measurements', () => {
    expect(results.targets.map((t) => t.id)).toEqual([
      'incrementOrPush-1000',
      'transactions-32-commits',
      'transactions-32-attempts',
      'transactions-32-p99',
      'transactions-1-no-loss',
      'transactions-8-no-loss',
      'transactions-invariant',
      'flash-sale-sold-out',
      'idempotency-duplicate',
    ]);
    for (const target of results.targets) {
      finite(target.value);
      expect(typeof target.met).toBe('boolean');
    }
    const iop = results.targets.find((t) => t.id === 'incrementOrPush-1000');
    expect(iop?.value).toBe(
      results.scaling.find((r) => r.id === 'incrementOrPushArrayItem/1000')?.ratio.median,
    );
  });

  it('counts the round trips of the contract: 1 per single-document success, guardedDecrementAll 2 at every k, the naive way k + 1', () => {
    expect(commandsOf('guardedDecrement/success/library')).toBe(1);
    expect(commandsOf('guardedDecrement/opId/library')).toBe(1);
    expect(commandsOf('guardedDecrement/success/naive')).toBe(2);
    for (const k of [1, 5, 20, 100]) {
      expect(commandsOf(`guardedDecrementAll/success k=${k}/library`), `k=${k}`).toBe(2);
      expect(commandsOf(`guardedDecrementAll/success k=${k}/naive`), `k=${k}`).toBe(k + 1);
    }
    for (const path of [
      'incremented',
      'pushed',
      'limitReached',
      'notFound',
      'upsert (created)',
      'opId',
    ]) {
      expect(commandsOf(`incrementOrPushArrayItem/${path}/library`), path).toBe(1);
    }
    expect(commandsOf('incrementOrPushArrayItem/pushed/naive')).toBe(2);
    expect(commandsOf('claimOnce/claimed/library')).toBe(1);
    expect(commandsOf('addToSetWithCapacity/added/library')).toBe(1);
    expect(commandsOf('removeFromSetWithCapacity/removed/library')).toBe(1);
    expect(commandsOf('applyProgress/applied/library')).toBe(1);
    expect(commandsOf('updateWithVersion/updated/library')).toBe(2);
    expect(commandsOf('withIdempotencyKey/executed/library')).toBe(2);
    expect(commandsOf('withRetryingTransaction/transfer, no conflict/library')).toBe(3);
    expect(commandsOf('withRetryingTransaction/transfer, no conflict/driver withTransaction')).toBe(
      3,
    );
  });

  it('flash sale: the guarded variants never oversell; transfers never change the total balance', () => {
    const sale = (variant: string) => results.flashSale.find((r) => r.variant === variant);
    expect(sale('guardedDecrement')?.oversells).toBe(0);
    expect(sale('raw guarded findOneAndUpdate')?.oversells).toBe(0);
    expect(sale('naive read-then-update')?.rounds).toBeGreaterThan(0);
    for (const row of results.transfers) {
      expect(row.libraryInvariantBroken, `${row.clients} clients`).toBe(0);
      expect(row.driverInvariantBroken, `${row.clients} clients`).toBe(0);
    }
    const raw = results.idempotency.find((r) => r.variant === 'raw findOne of the record');
    expect(raw?.roundTripsPerRequest).toBe(1);
  });
});
