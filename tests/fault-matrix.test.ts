/**
 * The fault matrix: every writing primitive, on each of its paths (success and failure, with
 * and without `opId`), × every command that path sends × a fault injected into that command
 * with the server's `failCommand` fail point × {once, twice}.
 *
 * After each cell, the effect the database shows (counted from the final state: how many times
 * the primitive's write applied) must agree with what the call said:
 * - it resolved with an outcome that applies (`decremented`, `claimed`, `executed`, …): applied
 *   exactly once;
 * - it resolved with an outcome that does not (`insufficient`, `full`, `replayed`, …): not at all;
 * - it threw: what the error says (`errorClaim` below). An error that says "may have applied"
 *   allows zero or one; any other error allows zero. Never two: never doubled, never lost.
 *
 * Each scenario's command list is the one the driver's command monitoring records on the
 * path without a fault: the `baseline` test of each scenario checks it, so the matrix cannot
 * drift from what the primitive really sends.
 *
 * Labels: the "labelled" retryable-code fault sets the labels mongod's ErrorLabelBuilder
 * computes for that command (`mongodLabels`): the offline server adds no TransientTransactionError
 * to a retryable code inside a transaction (mongod does, error_labels.cpp
 * isTransientTransactionError: `isRetriableError(code)` for statements other than
 * commit/abort), so leaving the labels to the server would test a different fault there.
 * WriteConflict and the write concern errors keep the labels the server computes.
 */
import {
  type Collection,
  type Document,
  MongoError,
  MongoNetworkError,
  MongoServerError,
  MongoWriteConcernError,
  ObjectId,
} from 'mongodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyProgress } from '../src/apply-progress.js';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../src/capacity-set.js';
import { claimOnce } from '../src/claim-once.js';
import {
  isIdempotencyResultNotStoredError,
  isMongoAtomicsError,
  isRetryBudgetExhaustedError,
} from '../src/errors.js';
import { guardedDecrement, guardedDecrementAll } from '../src/guarded-decrement.js';
import { type IdempotencyCollection, withIdempotencyKey } from '../src/idempotency.js';
import { incrementOrPushArrayItem } from '../src/increment-or-push.js';
import { withRetryingTransaction } from '../src/transaction.js';
import { updateWithVersion } from '../src/update-with-version.js';
import { sleep } from './support/async.js';
import { failCommand, useFailPointClients } from './support/failpoints.js';
import { useTestDatabase } from './support/mongo.js';

interface Doc extends Document {
  _id: string;
}

const t = useTestDatabase('fault_matrix');
const failPoints = useFailPointClients(() => t.db, 'faultmx');

/** The collections every cell writes in (its documents are keyed by the cell's own id). */
const ITEMS = 'items';
const RECORDS = 'records';
const LEDGER = 'ledger';

/** The blocked command waits this long on the server; the client gives up before. */
const BLOCK_MS = 100;
const SOCKET_TIMEOUT_MS = 40;

/** A fast retry budget for the transaction runner (the defaults are 100 attempts, 120 s). */
const TRANSACTION = { maxAttempts: 6, backoff: { initialDelayMs: 1, maxDelayMs: 4 } } as const;

// ---------------------------------------------------------------------------------------------
// Faults

interface Step {
  /** The command name as command monitoring reports it. */
  readonly command: string;
  /** Sent inside a transaction (`autocommit: false`). */
  readonly inTransaction?: boolean;
  /**
   * Where the fail point is armed: `start` (before the call: the first such command is hit) or
   * a named point the scenario reaches (`fnStart`: on entering the idempotency callback, before
   * its own write; `fn`: inside it, after that write), so a later command of the same name is
   * hit instead of the first.
   */
  readonly at?: 'start' | 'fnStart' | 'fn';
  /** Tells two steps with the same command apart in the test name. */
  readonly label?: string;
}

/** ErrorCodes::isRetriableError member used for the retryable-code faults. */
const SHUTDOWN_IN_PROGRESS = 91;
const WRITE_CONFLICT = 112;
const WRITE_CONCERN_FAILED = 64;

/** Commands the driver sends as retryable writes outside a transaction (they carry a txnNumber). */
const WRITES = new Set(['insert', 'update', 'delete', 'findAndModify']);

/**
 * The labels mongod (error_labels.cpp, ErrorLabelBuilder) puts on a command error with a
 * retriable code: TransientTransactionError for a statement inside a transaction other than
 * commit/abort; RetryableWriteError for commit/abort and for retryable writes; none for reads.
 */
function mongodLabels(step: Step): string[] {
  const commitOrAbort = step.command === 'commitTransaction' || step.command === 'abortTransaction';
  if (step.inTransaction === true && !commitOrAbort) return ['TransientTransactionError'];
  if (commitOrAbort || (step.inTransaction !== true && WRITES.has(step.command))) {
    return ['RetryableWriteError'];
  }
  return [];
}

interface Fault {
  readonly name: string;
  readonly data: (step: Step) => Document;
  /** The client under test needs a socket timeout below the block. */
  readonly blocks?: boolean;
  /** Whether the fault makes a cell of its own for this step (default: yes). */
  readonly appliesTo?: (step: Step) => boolean;
}

/**
 * The commands mongod attaches a fail point's `writeConcernError` to: those that support a
 * write concern (service_entry_point_common.cpp, runCommandImpl: the fail point is evaluated in
 * `waitForWriteConcern`, only when `invocation->supportsWriteConcern()`). A `find`, or an
 * `aggregate` without `$out`/`$merge`, never gets one.
 */
const WRITE_CONCERN_COMMANDS = new Set([...WRITES, 'commitTransaction', 'abortTransaction']);
const takesWriteConcern = (step: Step) => WRITE_CONCERN_COMMANDS.has(step.command);

const FAULTS: readonly Fault[] = [
  { name: 'closeConnection', data: () => ({ closeConnection: true }) },
  {
    name: 'code 91 labelled as mongod',
    data: (step) => ({ errorCode: SHUTDOWN_IN_PROGRESS, errorLabels: mongodLabels(step) }),
    // mongod labels a retryable code on a read nothing: the "no label" cell is this cell.
    appliesTo: (step) => mongodLabels(step).length > 0,
  },
  { name: 'code 91 no label', data: () => ({ errorCode: SHUTDOWN_IN_PROGRESS, errorLabels: [] }) },
  { name: 'WriteConflict', data: () => ({ errorCode: WRITE_CONFLICT }) },
  {
    name: 'writeConcernError 91',
    data: () => ({
      writeConcernError: { code: SHUTDOWN_IN_PROGRESS, errmsg: 'Replication is being shut down' },
    }),
    appliesTo: takesWriteConcern,
  },
  {
    name: 'writeConcernError 64',
    data: () => ({
      writeConcernError: {
        code: WRITE_CONCERN_FAILED,
        codeName: 'WriteConcernFailed',
        errmsg: 'waiting for replication timed out',
        errInfo: { wtimeout: true },
      },
    }),
    appliesTo: takesWriteConcern,
  },
  {
    name: `blocked ${BLOCK_MS} ms past a ${SOCKET_TIMEOUT_MS} ms socket timeout`,
    data: () => ({ blockConnection: true, blockTimeMS: BLOCK_MS }),
    blocks: true,
  },
];

const faultsFor = (step: Step) => FAULTS.filter((fault) => fault.appliesTo?.(step) ?? true);

const TIMES = [
  { name: 'once', times: 1 },
  { name: 'twice', times: 2 },
] as const;

// ---------------------------------------------------------------------------------------------
// What an error says

type Claim = 0 | 1 | 'maybe';

/**
 * What a thrown error says about the write, for every primitive:
 * - RetryBudgetExhaustedError: `commitOutcomeUnknown` may have committed; any other reason
 *   (transient failures until the budget ran out) committed nothing;
 * - IdempotencyResultNotStoredError: `fn` ran (its effect applied once), see the idempotency
 *   scenarios for the record;
 * - a driver error after which the command may have run: a network error (the command may have
 *   reached the server, and a blocked one runs late), a write concern error (the command ran;
 *   whether it matched is not said), or UnknownTransactionCommitResult on a commit: zero or one;
 * - any other server error (a command error: the command did not run; a statement error inside
 *   a transaction: the transaction was aborted): nothing applied.
 * Anything else is not a claim this matrix knows: the cell fails and shows it.
 */
function errorClaim(error: unknown): Claim | 'unknown' {
  if (isRetryBudgetExhaustedError(error)) {
    return error.reason === 'commitOutcomeUnknown' ? 'maybe' : 0;
  }
  if (isIdempotencyResultNotStoredError(error)) return 1;
  if (isMongoAtomicsError(error)) return 'unknown';
  if (!(error instanceof MongoError)) return 'unknown';
  if (error instanceof MongoNetworkError) return 'maybe';
  if (error instanceof MongoWriteConcernError) return 'maybe';
  if ((error as { writeConcernError?: unknown }).writeConcernError !== undefined) return 'maybe';
  if (error.hasErrorLabel('UnknownTransactionCommitResult')) return 'maybe';
  if (error.name === 'MongoOperationTimeoutError') return 'maybe';
  if (error instanceof MongoServerError) return 0;
  return 'unknown';
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Ctx {
  /** The collection of the client under fault. */
  readonly items: Collection<Doc>;
  readonly records: Collection<Doc>;
  readonly ledger: Collection<Doc>;
  readonly client: import('mongodb').MongoClient;
  /** This cell's document id (or key). */
  readonly id: string;
  /** Arms the fail point if this cell's step waits for the named point (first time only). */
  arm(point: 'fnStart' | 'fn'): Promise<void>;
}

/** The test client's view of the collections, for seeding and for reading the final state. */
interface Admin {
  readonly items: Collection<Doc>;
  readonly records: Collection<Doc>;
  readonly ledger: Collection<Doc>;
}

interface Scenario {
  readonly primitive: string;
  readonly path: string;
  readonly steps: readonly Step[];
  /** The outcome the path resolves with when no fault is injected. */
  readonly outcome: string;
  seed(admin: Admin, id: string): Promise<void>;
  run(ctx: Ctx): Promise<unknown>;
  /** How many times the write applied, read from the final state; asserts its consistency. */
  effects(admin: Admin, id: string): Promise<number>;
  /** What the settled call says about the write. */
  claim(settled: Settled): Claim | 'unknown';
  /** Further agreement between what the call said and the final state. */
  agrees?(settled: Settled, admin: Admin, id: string): Promise<void>;
}

type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

function outcomeOf(value: unknown): unknown {
  return typeof value === 'object' && value !== null
    ? (value as { outcome?: unknown }).outcome
    : value;
}

/** A claim from the outcome when resolved (`applied` outcomes count one), else from the error. */
function claimBy(applied: readonly string[]) {
  return (settled: Settled): Claim | 'unknown' => {
    if (!settled.ok) return errorClaim(settled.error);
    return applied.includes(String(outcomeOf(settled.value))) ? 1 : 0;
  };
}

async function doc(c: Collection<Doc>, id: string): Promise<Doc> {
  const found = await c.findOne({ _id: id });
  if (found === null) throw new Error(`document ${id} is gone`);
  return found;
}

/** Count of `opId` in the op id log (default field `_opIds`). */
function opIdCount(d: Doc, opId = 'op'): number {
  const log = d._opIds;
  return Array.isArray(log) ? log.filter((entry) => entry === opId).length : 0;
}

/** Asserts the effect is a whole number of applications and returns it. */
function whole(value: number, what: string): number {
  expect(Number.isInteger(value), `${what}: ${value} is not a whole number of applications`).toBe(
    true,
  );
  return value + 0; // -0 (a removal that did not happen) counts as 0
}

const single = (primitive: string, path: string, rest: Omit<Scenario, 'primitive' | 'path'>) => ({
  primitive,
  path,
  ...rest,
});

const FAM: readonly Step[] = [{ command: 'findAndModify' }];
const FAM_FIND: readonly Step[] = [{ command: 'findAndModify' }, { command: 'find' }];

function incrementOrPushScenarios(): Scenario[] {
  const effects = (base: number, withOpId: boolean) => async (a: Admin, id: string) => {
    const d = await doc(a.items, id);
    const lines = (d.cart as Doc[]).filter((line) => line.sku === 'a');
    expect(lines.length, 'one line per sku').toBeLessThanOrEqual(1);
    const qty = lines.reduce((sum, line) => sum + (line.qty as number), 0) - base;
    if (withOpId) expect(opIdCount(d)).toBe(qty);
    return whole(qty, 'qty');
  };
  const claim = claimBy(['pushed', 'incremented', 'created']);
  return [
    single('incrementOrPushArrayItem', 'pushed', {
      steps: FAM,
      outcome: 'pushed',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, cart: [] });
      },
      run: ({ items, id }) =>
        incrementOrPushArrayItem(items, {
          filter: { _id: id },
          array: 'cart',
          match: { sku: 'a' },
          inc: { qty: 1 },
        }),
      effects: effects(0, false),
      claim,
    }),
    single('incrementOrPushArrayItem', 'incremented, opId', {
      steps: FAM,
      outcome: 'incremented',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, cart: [{ sku: 'a', qty: 1 }] });
      },
      run: ({ items, id }) =>
        incrementOrPushArrayItem(items, {
          filter: { _id: id },
          array: 'cart',
          match: { sku: 'a' },
          inc: { qty: 1 },
          opId: 'op',
        }),
      effects: effects(1, true),
      claim,
    }),
    single('incrementOrPushArrayItem', 'limitReached', {
      steps: FAM,
      outcome: 'limitReached',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, cart: [{ sku: 'a', qty: 5 }] });
      },
      run: ({ items, id }) =>
        incrementOrPushArrayItem(items, {
          filter: { _id: id },
          array: 'cart',
          match: { sku: 'a' },
          inc: { qty: 1 },
          max: { qty: 5 },
        }),
      effects: effects(5, false),
      claim,
    }),
  ];
}

function guardedDecrementScenarios(): Scenario[] {
  const effects = (stock: number, amount: number, opIdBase?: number) => {
    return async (a: Admin, id: string) => {
      const d = await doc(a.items, id);
      const applied = whole((stock - (d.stock as number)) / amount, 'stock taken');
      if (opIdBase !== undefined) expect(opIdCount(d)).toBe(opIdBase + applied);
      return applied;
    };
  };
  const claim = claimBy(['decremented']);
  const run =
    (amount: number, opId?: string) =>
    ({ items, id }: Ctx) =>
      guardedDecrement(items, {
        filter: { _id: id },
        field: 'stock',
        amount,
        ...(opId === undefined ? {} : { opId }),
      });
  return [
    single('guardedDecrement', 'decremented', {
      steps: FAM,
      outcome: 'decremented',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, stock: 10 });
      },
      run: run(3),
      effects: effects(10, 3),
      claim,
    }),
    single('guardedDecrement', 'decremented, opId', {
      steps: FAM,
      outcome: 'decremented',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, stock: 10 });
      },
      run: run(3, 'op'),
      effects: effects(10, 3, 0),
      claim,
    }),
    single('guardedDecrement', 'insufficient', {
      // One command: the update's own projection tells the outcome (no failure read).
      steps: FAM,
      outcome: 'insufficient',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, stock: 10 });
      },
      run: run(20),
      effects: effects(10, 20),
      claim,
    }),
    single('guardedDecrement', 'alreadyApplied, opId repeated', {
      // One command: the update's own projection tells the outcome (no failure read).
      steps: FAM,
      outcome: 'alreadyApplied',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, stock: 7, _opIds: ['op'] });
      },
      run: run(3, 'op'),
      effects: effects(7, 3, 1),
      claim,
    }),
  ];
}

function claimOnceScenarios(): Scenario[] {
  const effects = (withOpId: boolean) => async (a: Admin, id: string) => {
    const d = await doc(a.items, id);
    const applied = d.status === 'paid' && d.paidBy === 'cell' ? 1 : 0;
    if (withOpId) expect(opIdCount(d)).toBe(applied);
    return applied;
  };
  const claim = claimBy(['claimed']);
  const run =
    (opId?: string) =>
    ({ items, id }: Ctx) =>
      claimOnce(items, {
        filter: { _id: id },
        field: 'status',
        from: 'pending',
        to: 'paid',
        set: { paidBy: 'cell' },
        ...(opId === undefined ? {} : { opId }),
      });
  return [
    single('claimOnce', 'claimed', {
      steps: FAM,
      outcome: 'claimed',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, status: 'pending' });
      },
      run: run(),
      effects: effects(false),
      claim,
    }),
    single('claimOnce', 'claimed, opId', {
      steps: FAM,
      outcome: 'claimed',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, status: 'pending' });
      },
      run: run('op'),
      effects: effects(true),
      claim,
    }),
    single('claimOnce', 'alreadyClaimed', {
      steps: FAM_FIND,
      outcome: 'alreadyClaimed',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, status: 'paid', paidBy: 'other' });
      },
      run: run(),
      effects: effects(false),
      claim,
    }),
  ];
}

function capacitySetScenarios(): Scenario[] {
  /** Members `u` added (or removed, negative) since the seed; the counter moves with the array. */
  const effects =
    (seedCount: number, sign: 1 | -1, withOpId: boolean) => async (a: Admin, id: string) => {
      const d = await doc(a.items, id);
      const members = d.members as unknown[];
      expect(d.count, 'counter = array length').toBe(members.length);
      expect(members.filter((m) => m === 'u').length).toBeLessThanOrEqual(1);
      const applied = whole(sign * ((d.count as number) - seedCount), 'counter moved');
      if (withOpId) expect(opIdCount(d)).toBe(applied);
      return applied;
    };
  const add =
    (opId?: string, byId = true) =>
    ({ items, id }: Ctx) =>
      addToSetWithCapacity(items, {
        filter: byId ? { _id: id } : { _id: { $in: [id] } },
        array: 'members',
        member: 'u',
        counter: 'count',
        capacity: 2,
        ...(opId === undefined ? {} : { opId }),
      });
  const remove =
    (opId?: string, byId = true) =>
    ({ items, id }: Ctx) =>
      removeFromSetWithCapacity(items, {
        filter: byId ? { _id: id } : { _id: { $in: [id] } },
        array: 'members',
        member: 'u',
        counter: 'count',
        ...(opId === undefined ? {} : { opId }),
      });
  const seed = (members: string[]) => async (a: Admin, id: string) => {
    await a.items.insertOne({ _id: id, members, count: members.length });
  };
  return [
    single('addToSetWithCapacity', 'added', {
      steps: FAM,
      outcome: 'added',
      seed: seed([]),
      run: add(),
      effects: effects(0, 1, false),
      claim: claimBy(['added']),
    }),
    single('addToSetWithCapacity', 'added, opId', {
      steps: FAM,
      outcome: 'added',
      seed: seed([]),
      run: add('op'),
      effects: effects(0, 1, true),
      claim: claimBy(['added']),
    }),
    single('addToSetWithCapacity', 'full', {
      // One command: the update's own projection tells the outcome (no failure read).
      steps: FAM,
      outcome: 'full',
      seed: seed(['x', 'y']),
      run: add(),
      effects: effects(2, 1, false),
      claim: claimBy(['added']),
    }),
    single('addToSetWithCapacity', 'full, filter not by _id', {
      steps: FAM_FIND,
      outcome: 'full',
      seed: seed(['x', 'y']),
      run: add(undefined, false),
      effects: effects(2, 1, false),
      claim: claimBy(['added']),
    }),
    single('removeFromSetWithCapacity', 'removed', {
      steps: FAM,
      outcome: 'removed',
      seed: seed(['u', 'x']),
      run: remove(),
      effects: effects(2, -1, false),
      claim: claimBy(['removed']),
    }),
    single('removeFromSetWithCapacity', 'removed, opId', {
      steps: FAM,
      outcome: 'removed',
      seed: seed(['u', 'x']),
      run: remove('op'),
      effects: effects(2, -1, true),
      claim: claimBy(['removed']),
    }),
    single('removeFromSetWithCapacity', 'notMember', {
      // One command: the update's own projection tells the outcome (no failure read).
      steps: FAM,
      outcome: 'notMember',
      seed: seed(['x']),
      run: remove(),
      effects: effects(1, -1, false),
      claim: claimBy(['removed']),
    }),
    single('removeFromSetWithCapacity', 'notMember, filter not by _id', {
      steps: FAM_FIND,
      outcome: 'notMember',
      seed: seed(['x']),
      run: remove(undefined, false),
      effects: effects(1, -1, false),
      claim: claimBy(['removed']),
    }),
  ];
}

function applyProgressScenarios(): Scenario[] {
  const effects = (xp: number, opIdBase?: number) => async (a: Admin, id: string) => {
    const d = await doc(a.items, id);
    const applied = whole(((d.xp as number) - xp) / 10, 'xp awarded');
    expect(d.level, 'level derived from xp').toBe((d.xp as number) >= 100 ? 2 : 1);
    if (opIdBase !== undefined) expect(opIdCount(d)).toBe(opIdBase + applied);
    return applied;
  };
  const run =
    (opId?: string) =>
    ({ items, id }: Ctx) =>
      applyProgress(items, {
        filter: { _id: id },
        inc: { xp: 10 },
        level: { field: 'level', counter: 'xp', thresholds: [10, 100] },
        ...(opId === undefined ? {} : { opId }),
      });
  const claim = claimBy(['applied']);
  return [
    single('applyProgress', 'applied', {
      steps: FAM,
      outcome: 'applied',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, xp: 90, level: 1 });
      },
      run: run(),
      effects: effects(90),
      claim,
    }),
    single('applyProgress', 'applied, opId', {
      steps: FAM,
      outcome: 'applied',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, xp: 90, level: 1 });
      },
      run: run('op'),
      effects: effects(90, 0),
      claim,
    }),
    single('applyProgress', 'alreadyApplied, opId repeated', {
      // One command: the update's own projection tells the outcome (no failure read).
      steps: FAM,
      outcome: 'alreadyApplied',
      seed: async (a, id) => {
        await a.items.insertOne({ _id: id, xp: 100, level: 2, _opIds: ['op'] });
      },
      run: run('op'),
      effects: effects(100, 1),
      claim,
    }),
  ];
}

function updateWithVersionScenarios(): Scenario[] {
  const effects = (opIdBase?: number) => async (a: Admin, id: string) => {
    const d = await doc(a.items, id);
    const applied = whole((d.value as number) / 5, 'value added');
    expect(d.version ?? 0, 'one version bump per update').toBe(applied);
    if (opIdBase !== undefined) expect(opIdCount(d)).toBe(opIdBase + applied);
    return applied;
  };
  const run =
    (skip: boolean, opId?: string) =>
    ({ items, id }: Ctx) =>
      updateWithVersion(items, {
        filter: { _id: id },
        versionField: 'version',
        update: () => (skip ? null : { $inc: { value: 5 } }),
        backoff: { initialDelayMs: 1, maxDelayMs: 4 },
        ...(opId === undefined ? {} : { opId }),
      });
  const steps: readonly Step[] = [{ command: 'find' }, { command: 'findAndModify' }];
  const seed = async (a: Admin, id: string) => {
    await a.items.insertOne({ _id: id, value: 0 });
  };
  const claim = claimBy(['updated']);
  return [
    single('updateWithVersion', 'updated', {
      steps,
      outcome: 'updated',
      seed,
      run: run(false),
      effects: effects(),
      claim,
    }),
    single('updateWithVersion', 'updated, opId', {
      steps,
      outcome: 'updated',
      seed,
      run: run(false, 'op'),
      effects: effects(0),
      claim,
    }),
    single('updateWithVersion', 'skipped', {
      steps: [{ command: 'find' }],
      outcome: 'skipped',
      seed,
      run: run(true),
      effects: effects(),
      claim,
    }),
  ];
}

function guardedDecrementAllScenarios(): Scenario[] {
  /** Both items applied or neither: the order is all or nothing. */
  const effects = (amountB: number) => async (a: Admin, id: string) => {
    const takenA = whole((10 - ((await doc(a.items, `${id}:a`)).stock as number)) / 3, 'a taken');
    const takenB = whole(
      (10 - ((await doc(a.items, `${id}:b`)).stock as number)) / amountB,
      'b taken',
    );
    expect(takenA, 'no partial order').toBe(takenB);
    return takenA;
  };
  const seed = async (a: Admin, id: string) => {
    await a.items.insertMany([
      { _id: `${id}:a`, stock: 10 },
      { _id: `${id}:b`, stock: 10 },
    ]);
  };
  const items = (id: string, amountB: number) => [
    { filter: { _id: `${id}:a` }, amount: 3 },
    { filter: { _id: `${id}:b` }, amount: amountB },
  ];
  const own =
    (amountB: number) =>
    ({ items: c, client, id }: Ctx) =>
      guardedDecrementAll(c, {
        client,
        field: 'stock',
        items: items(id, amountB),
        transaction: TRANSACTION,
      });
  /** The caller's transaction: the runner commits what guardedDecrementAll wrote in it. */
  const inCallers =
    (amountB: number) =>
    ({ items: c, client, id }: Ctx) =>
      withRetryingTransaction(
        client,
        (session) => guardedDecrementAll(c, { session, field: 'stock', items: items(id, amountB) }),
        TRANSACTION,
      );
  const claim = claimBy(['decremented']);
  const tx = { inTransaction: true } as const;
  return [
    single('guardedDecrementAll (own transaction)', 'decremented', {
      steps: [
        { command: 'update', ...tx },
        { command: 'commitTransaction', ...tx },
      ],
      outcome: 'decremented',
      seed,
      run: own(2),
      effects: effects(2),
      claim,
    }),
    single('guardedDecrementAll (own transaction)', 'insufficient', {
      steps: [
        { command: 'update', ...tx },
        { command: 'abortTransaction', ...tx },
        { command: 'aggregate' },
      ],
      outcome: 'insufficient',
      seed,
      run: own(20),
      effects: effects(20),
      claim,
    }),
    single("guardedDecrementAll (caller's transaction)", 'decremented', {
      steps: [
        { command: 'aggregate', ...tx },
        { command: 'update', ...tx },
        { command: 'commitTransaction', ...tx },
      ],
      outcome: 'decremented',
      seed,
      run: inCallers(2),
      effects: effects(2),
      claim,
    }),
    single("guardedDecrementAll (caller's transaction)", 'insufficient', {
      steps: [
        { command: 'aggregate', ...tx },
        { command: 'commitTransaction', ...tx },
      ],
      outcome: 'insufficient',
      seed,
      run: inCallers(20),
      effects: effects(20),
      claim,
    }),
  ];
}

/** Thrown by the callbacks of the failure paths; rethrown unchanged by the primitives. */
class BusinessError extends Error {
  override name = 'BusinessError';
}

function idempotencyScenarios(): Scenario[] {
  /**
   * Plain mode: `fn` adds 1 to the ledger through the test client (its own write is not part of
   * the primitive's commands). The record must agree: `executed` stores the value; fn's error
   * releases the key (or, if the release failed, it stays in progress until its lease ends).
   */
  const plainRun =
    (fails: boolean) =>
    ({ records, id }: Ctx) =>
      withIdempotencyKey(records as unknown as IdempotencyCollection, {
        key: id,
        fn: async () => {
          await t.db.collection<Doc>(LEDGER).updateOne({ _id: id }, { $inc: { n: 1 } });
          if (fails) throw new BusinessError('fn failed');
          return 'value';
        },
      });
  /** Transaction mode: `fn` adds 1 to the ledger in the transaction (a findAndModify). */
  const txRun =
    (fails: boolean) =>
    ({ records, ledger, client, id, arm }: Ctx) =>
      withIdempotencyKey(records as unknown as IdempotencyCollection, {
        key: id,
        client,
        transaction: TRANSACTION,
        fn: async ({ session }) => {
          // The claim is a findAndModify too: fn's own is hit only when armed from here.
          await arm('fnStart');
          await ledger.findOneAndUpdate({ _id: id }, { $inc: { n: 1 } }, { session });
          await arm('fn');
          if (fails) throw new BusinessError('fn failed');
          return 'value';
        },
      });
  const seed = (completed: boolean) => async (a: Admin, id: string) => {
    await a.ledger.insertOne({ _id: id, n: completed ? 1 : 0 });
    if (completed) {
      const now = new Date();
      await a.records.insertOne({
        _id: id,
        state: 'completed',
        owner: 'earlier',
        value: 'value',
        createdAt: now,
        completedAt: now,
        expiresAt: new Date(now.getTime() + 3_600_000),
      });
    }
  };
  /**
   * Effects = ledger increments. The record agrees with them: a `completed` record means fn's
   * effect is in; in transaction mode fn's effect is in only with a `completed` record (they
   * commit together). In plain mode fn's effect may be in with the record in progress (the
   * completion failed) or absent (fn threw, the key was released).
   */
  const effects =
    (base: number, transactional: boolean) =>
    async (a: Admin, id: string): Promise<number> => {
      const applied = whole(((await doc(a.ledger, id)).n as number) - base, 'ledger');
      const record = await a.records.findOne({ _id: id });
      if (base === 1) {
        expect(record).toMatchObject({ state: 'completed', owner: 'earlier', value: 'value' });
      } else if (record?.state === 'completed') {
        // A stored result means fn ran and its effect is in.
        expect(record.value).toBe('value');
        expect(applied).toBe(1);
      } else if (transactional) {
        // fn's writes commit with the completion, or not at all.
        expect(applied, `record ${record?.state ?? 'absent'}, yet fn's write committed`).toBe(0);
      }
      expect(record?.state ?? 'absent').toMatch(/^(absent|inProgress|completed)$/);
      return applied;
    };
  /**
   * executed: one; replayed: none; fn's own error (the same object, rethrown): one in plain mode
   * (fn wrote before throwing; the key is released), none in transaction mode (rolled back);
   * IdempotencyResultNotStoredError: one, and `written` says whether the record is completed.
   */
  const claim =
    (transactional: boolean) =>
    (settled: Settled): Claim | 'unknown' => {
      if (settled.ok) return outcomeOf(settled.value) === 'executed' ? 1 : 0;
      if (settled.error instanceof BusinessError) return transactional ? 0 : 1;
      return errorClaim(settled.error);
    };
  /**
   * `executed` (lease kept) stored the value; IdempotencyResultNotStoredError's `written` says
   * whether the record is completed (true), still in progress (false), or either ('unknown':
   * the reply was lost, and the completion may run after the error).
   */
  const agrees = async (settled: Settled, a: Admin, id: string) => {
    const state = (await a.records.findOne({ _id: id }))?.state ?? 'absent';
    if (settled.ok && outcomeOf(settled.value) === 'executed') {
      expect(settled.value).toMatchObject({ value: 'value', leaseLost: false });
      expect(state, 'an executed call stored its result').toBe('completed');
    }
    if (!settled.ok && isIdempotencyResultNotStoredError(settled.error)) {
      const { written } = settled.error;
      // 'unknown' (a lost reply) allows either; true and false must be what the record says.
      const allowed =
        written === 'unknown'
          ? ['completed', 'inProgress']
          : [written ? 'completed' : 'inProgress'];
      expect(allowed, `written: ${written}, record: ${state}`).toContain(state);
    }
  };
  const tx = { inTransaction: true } as const;
  return [
    single('withIdempotencyKey', 'executed', {
      steps: [
        { command: 'findAndModify', label: 'claim' },
        { command: 'update', label: 'completion' },
      ],
      outcome: 'executed',
      seed: seed(false),
      run: plainRun(false),
      effects: effects(0, false),
      claim: claim(false),
      agrees,
    }),
    single('withIdempotencyKey', 'fn throws', {
      steps: [
        { command: 'findAndModify', label: 'claim' },
        { command: 'delete', label: 'release' },
      ],
      outcome: 'BusinessError',
      seed: seed(false),
      run: plainRun(true),
      effects: effects(0, false),
      claim: claim(false),
      agrees,
    }),
    single('withIdempotencyKey', 'replayed', {
      steps: [{ command: 'findAndModify', label: 'claim' }],
      outcome: 'replayed',
      seed: seed(true),
      run: plainRun(false),
      effects: effects(1, false),
      claim: claim(false),
      agrees,
    }),
    single('withIdempotencyKey (transaction)', 'executed', {
      steps: [
        { command: 'findAndModify', label: 'claim' },
        { command: 'update', label: 'fence', ...tx },
        { command: 'findAndModify', label: 'fn', at: 'fnStart', ...tx },
        { command: 'update', label: 'completion', at: 'fn', ...tx },
        { command: 'commitTransaction', ...tx },
      ],
      outcome: 'executed',
      seed: seed(false),
      run: txRun(false),
      effects: effects(0, true),
      claim: claim(true),
      agrees,
    }),
    single('withIdempotencyKey (transaction)', 'fn throws', {
      steps: [
        { command: 'findAndModify', label: 'claim' },
        { command: 'update', label: 'fence', ...tx },
        { command: 'findAndModify', label: 'fn', at: 'fnStart', ...tx },
        { command: 'abortTransaction', ...tx },
        { command: 'delete', label: 'release' },
      ],
      outcome: 'BusinessError',
      seed: seed(false),
      run: txRun(true),
      effects: effects(0, true),
      claim: claim(true),
      agrees,
    }),
    single('withIdempotencyKey (transaction)', 'replayed', {
      steps: [{ command: 'findAndModify', label: 'claim' }],
      outcome: 'replayed',
      seed: seed(true),
      run: txRun(false),
      effects: effects(1, true),
      claim: claim(true),
      agrees,
    }),
  ];
}

function transactionScenarios(): Scenario[] {
  /** The callback inserts a marker and counts it: both or neither, once. */
  const run =
    (fails: boolean) =>
    ({ items, client, id }: Ctx) =>
      withRetryingTransaction(
        client,
        async (session) => {
          // No fixed _id: a callback applied twice leaves two markers, not a duplicate key.
          await items.insertOne({ _id: new ObjectId().toHexString(), marker: id }, { session });
          if (fails) throw new BusinessError('callback failed');
          await items.updateOne({ _id: id }, { $inc: { n: 1 } }, { session });
          return 'committed';
        },
        TRANSACTION,
      );
  const effects = async (a: Admin, id: string) => {
    const markers = await a.items.countDocuments({ marker: id });
    const n = (await doc(a.items, id)).n as number;
    expect(markers, 'marker and counter commit together').toBe(n);
    return n;
  };
  const seed = async (a: Admin, id: string) => {
    await a.items.insertOne({ _id: id, n: 0 });
  };
  const claim = (settled: Settled): Claim | 'unknown' => {
    if (settled.ok) return settled.value === 'committed' ? 1 : 'unknown';
    if (settled.error instanceof BusinessError) return 0;
    return errorClaim(settled.error);
  };
  const tx = { inTransaction: true } as const;
  return [
    single('withRetryingTransaction', 'committed', {
      steps: [
        { command: 'insert', ...tx },
        { command: 'update', ...tx },
        { command: 'commitTransaction', ...tx },
      ],
      outcome: 'committed',
      seed,
      run: run(false),
      effects,
      claim,
    }),
    single('withRetryingTransaction', 'callback throws', {
      steps: [
        { command: 'insert', ...tx },
        { command: 'abortTransaction', ...tx },
      ],
      outcome: 'BusinessError',
      seed,
      run: run(true),
      effects,
      claim,
    }),
  ];
}

const SCENARIOS: readonly Scenario[] = [
  ...incrementOrPushScenarios(),
  ...guardedDecrementScenarios(),
  ...guardedDecrementAllScenarios(),
  ...claimOnceScenarios(),
  ...capacitySetScenarios(),
  ...applyProgressScenarios(),
  ...updateWithVersionScenarios(),
  ...idempotencyScenarios(),
  ...transactionScenarios(),
];

// ---------------------------------------------------------------------------------------------
// The harness

function admin(): Admin {
  return {
    items: t.db.collection<Doc>(ITEMS),
    records: t.db.collection<Doc>(RECORDS),
    ledger: t.db.collection<Doc>(LEDGER),
  };
}

let cellCounter = 0;
function cellId(): string {
  cellCounter += 1;
  return `cell${cellCounter}`;
}

function stepName(step: Step): string {
  return step.label === undefined ? step.command : `${step.command} (${step.label})`;
}

function settledName(settled: Settled): string {
  if (settled.ok) return String(outcomeOf(settled.value));
  return (settled.error as { name?: unknown })?.name === undefined
    ? String(settled.error)
    : String((settled.error as Error).name);
}

async function settle(promise: Promise<unknown>): Promise<Settled> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

interface Cell {
  readonly scenario: Scenario;
  readonly step?: Step;
  readonly fault?: Fault;
  readonly times?: number;
}

/** Runs one cell and returns what the call settled with and the effect counted. */
async function runCell({ scenario, step, fault, times }: Cell) {
  const a = admin();
  const id = cellId();
  await scenario.seed(a, id);
  const app = await failPoints.appClient({
    // After a network error or a state-change code (91) the driver marks the server unknown and
    // selects it again only after a new check, at most every minHeartbeatFrequencyMS (500 ms
    // by default, as SDAM specifies). A short one keeps the retries fast; what they do is the same.
    minHeartbeatFrequencyMS: 10,
    ...(fault?.blocks === true ? { socketTimeoutMS: SOCKET_TIMEOUT_MS } : {}),
  });
  const appDb = app.client.db(t.db.databaseName);
  const startedAt = new WeakMap<object, number>();
  app.client.on('commandStarted', (event) => startedAt.set(event, Date.now()));
  let armed = false;
  const arm = async () => {
    if (step === undefined || fault === undefined || times === undefined || armed) return;
    armed = true;
    await failCommand(
      t.db,
      { times },
      { failCommands: [step.command], appName: app.appName, ...fault.data(step) },
    );
  };
  if ((step?.at ?? 'start') === 'start') await arm();
  app.commands.reset();
  const settled = await settle(
    scenario.run({
      items: appDb.collection<Doc>(ITEMS),
      records: appDb.collection<Doc>(RECORDS),
      ledger: appDb.collection<Doc>(LEDGER),
      client: app.client,
      id,
      arm: async (point) => {
        if (step?.at === point) await arm();
      },
    }),
  );
  const sent = app.commands.names();
  // A blocked command that the client gave up on still runs on the server when its block ends:
  // wait for the last one, so a late second application shows in the state.
  if (fault?.blocks === true && step !== undefined) {
    const starts = app.commands.started
      .filter((event) => event.commandName === step.command)
      .map((event) => startedAt.get(event) ?? 0);
    const last = Math.max(0, ...starts);
    await sleep(Math.max(0, last + BLOCK_MS + 30 - Date.now()));
  }
  // Turning the fail point off answers how many commands it failed (`count`, as on mongod).
  const off = await t.db.admin().command({ configureFailPoint: 'failCommand', mode: 'off' });
  const fired = armed ? (off.count as number) : 0;
  const effect = await scenario.effects(a, id);
  await scenario.agrees?.(settled, a, id);
  return { settled, effect, sent, fired };
}

function assertAgrees(settled: Settled, effect: number, claim: Claim | 'unknown') {
  const said = settled.ok
    ? `resolved ${String(outcomeOf(settled.value))}`
    : `threw ${settledName(settled)}: ${(settled.error as Error)?.message}`;
  expect(claim, `a claim this matrix knows (${said})`).not.toBe('unknown');
  expect([0, 1], `never doubled (${said})`).toContain(effect);
  if (claim !== 'maybe')
    expect(effect, `the state matches what the call said (${said})`).toBe(claim);
}

beforeAll(async () => {
  for (const name of [ITEMS, RECORDS, LEDGER]) await t.db.createCollection(name);
});

let cells = 0;
for (const scenario of SCENARIOS) {
  for (const step of scenario.steps) {
    cells += faultsFor(step).length * TIMES.length;
  }
}

describe(`fault matrix (${SCENARIOS.length} paths, ${cells} cells)`, () => {
  for (const scenario of SCENARIOS) {
    describe(`${scenario.primitive} (${scenario.path})`, () => {
      it(`baseline: sends ${scenario.steps.map(stepName).join(', ')} and resolves ${scenario.outcome}`, async () => {
        const { settled, effect, sent } = await runCell({ scenario });
        expect(sent).toEqual(scenario.steps.map((step) => step.command));
        expect(settled.ok ? outcomeOf(settled.value) : settledName(settled)).toBe(scenario.outcome);
        assertAgrees(settled, effect, scenario.claim(settled));
      });

      for (const step of scenario.steps) {
        for (const fault of faultsFor(step)) {
          for (const { name, times } of TIMES) {
            it(`${stepName(step)} × ${fault.name} × ${name}`, async () => {
              const { settled, effect, fired } = await runCell({ scenario, step, fault, times });
              expect(fired, 'the fault hit the command').toBeGreaterThanOrEqual(1);
              assertAgrees(settled, effect, scenario.claim(settled));
            });
          }
        }
      }
    });
  }
});
