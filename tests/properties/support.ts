/**
 * Property-based concurrency tests: shared model, arbitraries and runner.
 *
 * A run is a *schedule*: for each of several single-connection clients, a list of steps (an
 * operation plus a pause before it). The clients run their lists concurrently, each step after
 * the previous one of the same client, so calls of different clients interleave at the server
 * (one MongoClient would queue them: see ../support/race.ts). After the run, the final state and
 * every call's reported outcome are checked against a sequential model and invariants.
 *
 * fast-check generates the schedules and, when a property fails, shrinks the schedule and
 * prints `{ seed, path }`. The schedule (operations, pauses, faults) replays exactly from them;
 * the server's interleaving also depends on timing, so shrinking keeps the smallest schedule
 * that failed when tried, and a replay runs the schedule several times (scheduleRepeats).
 *
 * Environment (see docs/testing.md, "Property tests"):
 * - `MONGO_ATOMICS_PROPERTY_RUNS=n`: n schedules per property instead of the bounded default;
 * - `MONGO_ATOMICS_PROPERTY_SEED=s` and `MONGO_ATOMICS_PROPERTY_PATH=p`: replay a failure (each
 *   schedule then runs 20 times, or `MONGO_ATOMICS_PROPERTY_REPEAT=n` times);
 * - `MONGO_ATOMICS_PROPERTY_CHAOS=1`: random `failCommand` fail points fire during each run.
 */
import { fc } from '@fast-check/vitest';
import type { Db, MongoClient } from 'mongodb';
import { afterAll, beforeAll, expect } from 'vitest';
import {
  isIdempotencyResultNotStoredError,
  isRetryBudgetExhaustedError,
} from '../../src/errors.js';
import { sleep } from '../support/async.js';
import { failCommand, serverLock, uniqueAppName } from '../support/failpoints.js';
import { newClient } from '../support/mongo.js';

function envInteger(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got "${raw}"`);
  }
  return value;
}

/** Chaos mode: random fail points fire during the runs (MONGO_ATOMICS_PROPERTY_CHAOS=1). */
export const CHAOS = process.env.MONGO_ATOMICS_PROPERTY_CHAOS === '1';

/** Schedules per property: the env override (long mode), else the bounded default. */
export function propertyRuns(bounded: number): number {
  return envInteger('MONGO_ATOMICS_PROPERTY_RUNS') ?? bounded;
}

/**
 * fast-check parameters for a property: the number of runs, and a replay when
 * MONGO_ATOMICS_PROPERTY_SEED (and optionally _PATH) are set. fast-check's failure report
 * prints `{ seed, path, endOnFailure }`: pass those back through these variables.
 */
export function propertyParameters(bounded: number): fc.Parameters<never> {
  const seed = process.env.MONGO_ATOMICS_PROPERTY_SEED;
  const path = process.env.MONGO_ATOMICS_PROPERTY_PATH;
  const parameters: fc.Parameters<never> = { numRuns: propertyRuns(bounded) };
  if (seed !== undefined && seed !== '') {
    parameters.seed = Number(seed);
    if (!Number.isSafeInteger(parameters.seed)) {
      throw new Error(`MONGO_ATOMICS_PROPERTY_SEED must be an integer, got "${seed}"`);
    }
    if (path !== undefined && path !== '') parameters.path = path;
  }
  return parameters;
}

/**
 * How many times each generated schedule runs: MONGO_ATOMICS_PROPERTY_REPEAT, else 20 when
 * replaying a seed (the schedule replays exactly, the server's interleaving only by chance, so
 * a replay tries the schedule several times), else 1.
 */
export function scheduleRepeats(): number {
  const replaying = (process.env.MONGO_ATOMICS_PROPERTY_SEED ?? '') !== '';
  return envInteger('MONGO_ATOMICS_PROPERTY_REPEAT') ?? (replaying ? 20 : 1);
}

/** Runs one generated schedule `scheduleRepeats()` times (each run sets up its own documents). */
export async function repeated(run: () => Promise<void>): Promise<void> {
  const times = scheduleRepeats();
  for (let i = 0; i < times; i++) await run();
}

/**
 * A generous per-test timeout for `runs` schedules: long and chaos modes take minutes, and a
 * 2-core machine shared with other test files is slow.
 */
export function propertyTimeout(bounded: number, msPerRun = 400): number {
  return Math.max(60_000, propertyRuns(bounded) * scheduleRepeats() * msPerRun * (CHAOS ? 4 : 1));
}

export interface PropertyClients {
  /** Single-connection clients that run the schedule's lists, all named `appName`. */
  readonly all: readonly MongoClient[];
  /** The clients' shared appName, which chaos fail points target. */
  readonly appName: string;
}

/**
 * `count` connected single-connection clients for this file, closed after it. They share one
 * appName, so a chaos fail point (which targets it) hits whichever of them sends the failing
 * command, and no other file's client.
 */
export function usePropertyClients(count: number, label: string): PropertyClients {
  const clients: MongoClient[] = [];
  const appName = uniqueAppName(`prop-${label}`);
  beforeAll(async () => {
    for (let i = 0; i < count; i++) clients.push(newClient({ maxPoolSize: 1, appName }));
    await Promise.all(clients.map((client) => client.connect()));
  });
  afterAll(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });
  return { all: clients, appName };
}

/** One step of a client's list: pause, then call. */
export interface Step<Op> {
  readonly op: Op;
  /** 0: none; 1: yield to the event loop (setImmediate); n ≥ 2: sleep n − 1 ms. */
  readonly pause: number;
}

/** A list of steps per client. */
export type Schedule<Op> = readonly (readonly Step<Op>[])[];

export const pauseArb = fc.nat({ max: 3 });

export function scheduleArb<Op>(
  op: fc.Arbitrary<Op>,
  clients: number,
  options: { minSteps?: number; maxSteps: number },
): fc.Arbitrary<Schedule<Op>> {
  const step = fc.record({ op, pause: pauseArb });
  return fc.array(
    fc.array(step, { minLength: options.minSteps ?? 0, maxLength: options.maxSteps }),
    {
      minLength: clients,
      maxLength: clients,
    },
  );
}

export async function pause(ticks: number): Promise<void> {
  if (ticks === 1) await new Promise<void>((resolve) => setImmediate(resolve));
  else if (ticks >= 2) await sleep(ticks - 1);
}

/** What one call did: it resolved to `result`, or threw `error` (`threw` tells them apart). */
export type Call<Op, R> =
  | { readonly client: number; readonly op: Op; readonly threw: false; readonly result: R }
  | { readonly client: number; readonly op: Op; readonly threw: true; readonly error: unknown };

/**
 * Runs the schedule: each client's steps in order, the clients concurrently. Every call is
 * recorded, resolved or thrown; the property decides which errors are acceptable.
 */
export async function runSchedule<Op, R>(
  clients: readonly MongoClient[],
  schedule: Schedule<Op>,
  execute: (client: MongoClient, op: Op) => Promise<R>,
): Promise<Call<Op, R>[]> {
  const perClient = await Promise.all(
    schedule.map(async (steps, index) => {
      const client = clients[index];
      if (client === undefined) throw new Error(`schedule has more lists than clients (${index})`);
      const calls: Call<Op, R>[] = [];
      for (const { op, pause: ticks } of steps) {
        await pause(ticks);
        try {
          calls.push({ client: index, op, threw: false, result: await execute(client, op) });
        } catch (error) {
          calls.push({ client: index, op, threw: true, error });
        }
      }
      return calls;
    }),
  );
  return perClient.flat();
}

/** Outside chaos mode, no call may throw: fail with the first error, as thrown. */
export function resolvedOnly<Op, R>(calls: readonly Call<Op, R>[]): void {
  for (const call of calls) {
    if (call.threw) throw call.error;
  }
}

// ---------------------------------------------------------------------------------------------
// Chaos mode
// ---------------------------------------------------------------------------------------------

/** Retryable error codes (mongod's ErrorCodes::isRetriableError). */
const RETRYABLE_CODES = [10107, 91, 189, 11602] as const;

export type FaultKind =
  | 'closeConnection'
  | 'retryableLabelled'
  | 'retryableUnlabelled'
  | 'writeConflict'
  | 'writeConcernError';

/** A fail point to fire during a run: after `afterMs`, the next `times` `command`s fail. */
export interface Fault {
  readonly kind: FaultKind;
  readonly command: string;
  readonly times: 1 | 2;
  readonly afterMs: number;
  /** Which retryable code (index into the list), for the kinds that use one. */
  readonly code: number;
}

export function faultsArb(commands: readonly string[]): fc.Arbitrary<readonly Fault[]> {
  const fault = fc.record({
    kind: fc.constantFrom<FaultKind>(
      'closeConnection',
      'retryableLabelled',
      'retryableUnlabelled',
      'writeConflict',
      'writeConcernError',
    ),
    command: fc.constantFrom(...commands),
    times: fc.constantFrom<1 | 2>(1, 2),
    afterMs: fc.nat({ max: 15 }),
    code: fc.nat({ max: RETRYABLE_CODES.length - 1 }),
  });
  return CHAOS ? fc.array(fault, { minLength: 1, maxLength: 3 }) : fc.constant([]);
}

/** The `failCommand` data of a fault, targeting `appName` alone. */
function faultData(fault: Fault, appName: string) {
  const code = RETRYABLE_CODES[fault.code] ?? 91;
  const base = { failCommands: [fault.command], appName };
  switch (fault.kind) {
    case 'closeConnection':
      return { ...base, closeConnection: true };
    // No `errorLabels`: the server computes them (RetryableWriteError on a retryable write,
    // TransientTransactionError inside a transaction), as on a real failover.
    case 'retryableLabelled':
      return { ...base, errorCode: code };
    // An explicit empty list: the same code with no label, so nothing retries it.
    case 'retryableUnlabelled':
      return { ...base, errorCode: code, errorLabels: [] };
    case 'writeConflict':
      return { ...base, errorCode: 112 };
    // Applied, then answered with a write concern error: 91 is retryable, 64 is not.
    case 'writeConcernError':
      return {
        ...base,
        writeConcernError:
          fault.code % 2 === 0
            ? { code: 91, errmsg: 'Replication is being shut down' }
            : { code: 64, errmsg: 'waiting for replication timed out' },
      };
  }
}

/**
 * Runs `body` with the chaos faults firing at their times (a no-op wrapper outside chaos mode).
 * The fail point is server-wide while files run in parallel: the cross-process lock is held for
 * the run, every fault targets the property's own appName, and the fail point is off after.
 */
export async function withFaults<T>(
  admin: Db,
  appName: string,
  faults: readonly Fault[],
  body: () => Promise<T>,
): Promise<T> {
  if (faults.length === 0) return body();
  const release = await serverLock('failCommand');
  try {
    let done = false;
    const firing = (async () => {
      for (const fault of faults) {
        await sleep(fault.afterMs);
        if (done) return;
        await failCommand(admin, { times: fault.times }, faultData(fault, appName));
      }
    })();
    try {
      return await body();
    } finally {
      done = true;
      await firing;
    }
  } finally {
    try {
      await failCommand(admin, 'off');
    } finally {
      await release();
    }
  }
}

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  errorLabels?: unknown;
  writeConcernError?: unknown;
  hasErrorLabel?: (label: string) => boolean;
}

/**
 * Why a thrown error is acceptable in chaos mode, or undefined when it is not: it must say the
 * write may have applied (a network error, a write concern error, an outcome-unknown or
 * retryable label), be a retry budget error, or be the injected server error itself (a fail
 * point error is raised before the command runs).
 */
export function chaosErrorKind(error: unknown): string | undefined {
  if (isRetryBudgetExhaustedError(error)) return 'RetryBudgetExhaustedError';
  if (isIdempotencyResultNotStoredError(error)) return 'IdempotencyResultNotStoredError';
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as ErrorLike;
  const name = typeof e.name === 'string' ? e.name : '';
  if (/^MongoNetwork/.test(name) || name === 'MongoPoolClearedError') return name;
  if (name === 'MongoWriteConcernError' || e.writeConcernError !== undefined) {
    return 'writeConcernError';
  }
  // A bulkWrite's write concern error (MongoBulkWriteError carrying it, code and all).
  const bulk = (error as { result?: { getWriteConcernError?: () => unknown } }).result;
  if (typeof bulk?.getWriteConcernError === 'function' && bulk.getWriteConcernError() != null) {
    return 'writeConcernError (bulkWrite)';
  }
  const has = (label: string) =>
    typeof e.hasErrorLabel === 'function'
      ? e.hasErrorLabel(label)
      : Array.isArray(e.errorLabels) && e.errorLabels.includes(label);
  for (const label of [
    'UnknownTransactionCommitResult',
    'RetryableWriteError',
    'TransientTransactionError',
  ]) {
    if (has(label)) return label;
  }
  // The injected error itself, unlabelled (MongoServerError, or MongoBulkWriteError from a
  // bulkWrite): the fail point answered before the command ran.
  if (
    /^Mongo/.test(name) &&
    (e.code === 112 || (RETRYABLE_CODES as readonly unknown[]).includes(e.code))
  ) {
    return `injected code ${String(e.code)}`;
  }
  return undefined;
}

/** Outcome and error counts of this file's schedules, printed with MONGO_ATOMICS_PROPERTY_STATS=1. */
const stats = new Map<string, number>();

function count(key: string): void {
  stats.set(key, (stats.get(key) ?? 0) + 1);
}

function record<Op, R>(calls: readonly Call<Op, R>[], prefix: string): void {
  count(`${prefix}schedules`);
  for (const call of calls) {
    const op = call.op as { kind?: unknown; mode?: unknown };
    const label = [op.kind, op.mode].filter((part) => typeof part === 'string').join('/') || 'call';
    const outcome = call.threw
      ? `threw ${chaosErrorKind(call.error) ?? `UNEXPECTED ${describeError(call.error)}`}`
      : String((call.result as { outcome?: unknown }).outcome);
    count(`${prefix}${label}: ${outcome}`);
  }
}

function describeError(error: unknown): string {
  const e = error as { name?: unknown; code?: unknown; message?: unknown };
  return `${String(e?.name)} ${String(e?.code)}: ${String(e?.message).slice(0, 100)}`;
}

/** Prints the file's counts after its properties ran, when MONGO_ATOMICS_PROPERTY_STATS=1. */
export function useStatsReport(label: string): void {
  afterAll(() => {
    if (process.env.MONGO_ATOMICS_PROPERTY_STATS !== '1') return;
    const lines = [...stats].sort(([a], [b]) => a.localeCompare(b));
    process.stderr.write(
      `[property stats: ${label}${CHAOS ? ', chaos' : ''}]\n${lines.map(([k, n]) => `  ${k}: ${n}`).join('\n')}\n`,
    );
  });
}

/**
 * Outside chaos mode no call may throw; in chaos mode every thrown error must be acceptable
 * (see chaosErrorKind). Also counts the outcomes for the stats report.
 */
export function expectAcceptableErrors<Op, R>(
  calls: readonly Call<Op, R>[],
  statsPrefix = '',
): void {
  record(calls, statsPrefix);
  if (!CHAOS) {
    resolvedOnly(calls);
    return;
  }
  for (const call of calls) {
    if (call.threw && chaosErrorKind(call.error) === undefined) throw call.error;
  }
}

/**
 * Is `target` (one number per document) the sum of a subset of `uncertain` (vectors of the
 * calls that threw, which may or may not have applied)? Exact for up to 16 uncertain calls;
 * beyond that, checked document by document (a necessary condition).
 */
export function isSubsetSum(target: readonly number[], uncertain: readonly number[][]): boolean {
  if (uncertain.length <= 16) {
    for (let mask = 0; mask < 1 << uncertain.length; mask++) {
      const sum = target.map(() => 0);
      uncertain.forEach((vector, i) => {
        if ((mask & (1 << i)) === 0) return;
        vector.forEach((value, d) => {
          sum[d] = (sum[d] ?? 0) + value;
        });
      });
      if (sum.every((value, d) => value === target[d])) return true;
    }
    return false;
  }
  return target.every((value, d) => {
    let reachable = new Set([0]);
    for (const vector of uncertain) {
      const next = new Set(reachable);
      for (const r of reachable) next.add(r + (vector[d] ?? 0));
      reachable = next;
    }
    return reachable.has(value);
  });
}

/** Asserts the invariant, with the details in the failure message. */
export function check(condition: boolean, message: string, details?: unknown): void {
  expect(
    condition,
    `${message}${details === undefined ? '' : `: ${JSON.stringify(details)}`}`,
  ).toBe(true);
}
