/**
 * Property: random concurrent mixes of stock takes (guardedDecrement, some with repeated
 * opIds), restocks (a plain `$inc`, as an application writes them) and multi-item orders
 * (guardedDecrementAll in its own transaction and in the caller's) on three hot documents keep
 * the stock exact, never below the floor, every opId applied once and every order whole.
 */
import { fc, test } from '@fast-check/vitest';
import type { Collection, MongoClient } from 'mongodb';
import { beforeAll, expect } from 'vitest';
import { guardedDecrement, guardedDecrementAll } from '../../src/guarded-decrement.js';
import { withRetryingTransaction } from '../../src/transaction.js';
import { useTestDatabase } from '../support/mongo.js';
import {
  type Call,
  CHAOS,
  check,
  expectAcceptableErrors,
  faultsArb,
  isSubsetSum,
  pause,
  propertyParameters,
  propertyTimeout,
  repeated,
  runSchedule,
  type Schedule,
  scheduleArb,
  usePropertyClients,
  useStatsReport,
  withFaults,
} from './support.js';

interface Product {
  _id: string;
  stock: number;
  _opIds?: string[];
}

const DOCS = 3;
const CLIENTS = 4;
const RUNS = 10;

type Item = { readonly doc: number; readonly amount: number };
type StockOp =
  | {
      readonly kind: 'take';
      readonly doc: number;
      readonly amount: number;
      readonly opId: string | null;
    }
  | { readonly kind: 'restock'; readonly doc: number; readonly amount: number }
  | { readonly kind: 'order'; readonly mode: 'own' | 'caller'; readonly items: readonly Item[] };
type Outcome = {
  readonly outcome: string;
  readonly stockAfter?: number;
  readonly shortages?: number;
};

const docArb = fc.nat({ max: DOCS - 1 });
const stockOpArb: fc.Arbitrary<StockOp> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('take' as const),
      doc: docArb,
      amount: fc.integer({ min: 1, max: 4 }),
      // A few shared ids, so that repeats (double clicks, retries) race with each other.
      opId: fc.option(fc.constantFrom('op-a', 'op-b'), { nil: null }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('restock' as const),
      doc: docArb,
      amount: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('order' as const),
      mode: fc.constantFrom('own' as const, 'caller' as const),
      items: fc.array(fc.record({ doc: docArb, amount: fc.integer({ min: 1, max: 3 }) }), {
        minLength: 1,
        maxLength: 3,
      }),
    }),
  },
);

const t = useTestDatabase('prop_stock');
const clients = usePropertyClients(CLIENTS, 'stock');
useStatsReport('stock');
const NAME = 'products';

beforeAll(async () => {
  // Collections exist before any transaction uses them.
  await t.db.createCollection(NAME);
});

let runCounter = 0;

interface World {
  readonly ids: readonly string[];
  readonly floor: number;
  readonly initial: readonly number[];
}

async function setUp(initial: readonly number[], floor: number): Promise<World> {
  runCounter += 1;
  const ids = initial.map((_, d) => `r${runCounter}-p${d}`);
  await t.db
    .collection<Product>(NAME)
    .insertMany(initial.map((stock, d) => ({ _id: ids[d]!, stock })));
  return { ids, floor, initial };
}

function collectionOf(client: MongoClient): Collection<Product> {
  return client.db(t.db.databaseName).collection<Product>(NAME);
}

/** The library's calls for one operation, reduced to what the model needs. */
async function execute(world: World, client: MongoClient, op: StockOp): Promise<Outcome> {
  const coll = collectionOf(client);
  const { ids, floor } = world;
  switch (op.kind) {
    case 'take': {
      const base = { filter: { _id: ids[op.doc]! }, field: 'stock', amount: op.amount, floor };
      const result =
        op.opId === null
          ? await guardedDecrement(coll, base)
          : await guardedDecrement(coll, { ...base, opId: op.opId });
      return result.outcome === 'decremented'
        ? { outcome: result.outcome, stockAfter: result.document.stock }
        : { outcome: result.outcome };
    }
    case 'restock': {
      const result = await coll.updateOne({ _id: ids[op.doc]! }, { $inc: { stock: op.amount } });
      return { outcome: result.matchedCount === 1 ? 'restocked' : 'notFound' };
    }
    case 'order': {
      const items = op.items.map((item) => ({
        filter: { _id: ids[item.doc]! },
        amount: item.amount,
      }));
      const result =
        op.mode === 'own'
          ? await guardedDecrementAll(coll, { client, items, field: 'stock', floor })
          : await withRetryingTransaction(client, (session) =>
              guardedDecrementAll(coll, { session, items, field: 'stock', floor }),
            );
      return result.outcome === 'insufficient'
        ? { outcome: result.outcome, shortages: result.shortages.length }
        : { outcome: result.outcome };
    }
  }
}

/** What the operation does to each document's stock if it applies. */
function deltaOf(op: StockOp): number[] {
  const delta = Array.from({ length: DOCS }, () => 0);
  if (op.kind === 'take') delta[op.doc]! -= op.amount;
  else if (op.kind === 'restock') delta[op.doc]! += op.amount;
  else for (const item of op.items) delta[item.doc]! -= item.amount;
  return delta;
}

const ALLOWED: Record<StockOp['kind'], readonly string[]> = {
  take: ['decremented', 'insufficient', 'alreadyApplied'],
  restock: ['restocked'],
  order: ['decremented', 'insufficient'],
};

/** Checks the final documents and every call's outcome against the sequential model. */
function verify(
  world: World,
  calls: readonly Call<StockOp, Outcome>[],
  finals: readonly Product[],
  statsPrefix = '',
) {
  expectAcceptableErrors(calls, statsPrefix);
  const byId = new Map(finals.map((doc) => [doc._id, doc]));
  const final = world.ids.map((id) => byId.get(id)?.stock ?? Number.NaN);

  const known = Array.from({ length: DOCS }, () => 0);
  const uncertain: number[][] = [];
  for (const call of calls) {
    if (call.threw) {
      uncertain.push(deltaOf(call.op));
      continue;
    }
    const { op, result } = call;
    check(ALLOWED[op.kind].includes(result.outcome), `unexpected outcome for ${op.kind}`, result);
    const applied = result.outcome === 'decremented' || result.outcome === 'restocked';
    if (applied) {
      deltaOf(op).forEach((value, d) => {
        known[d]! += value;
      });
    }
    // What a take reports is what the document holds after it: never below the floor.
    if (result.stockAfter !== undefined) {
      check(result.stockAfter >= world.floor, 'a take reported stock below the floor', result);
    }
    if (result.outcome === 'insufficient' && op.kind === 'order') {
      check((result.shortages ?? 0) > 0, 'an insufficient order names no shortage', result);
    }
  }

  // Stock never below its floor (it starts at or above it; restocks only add).
  final.forEach((stock, d) => {
    check(stock >= world.floor, `stock of p${d} below the floor`, final);
  });
  // Exact: initial − successful takes and orders + restocks (plus, in chaos mode, some subset of
  // the calls that threw: they may or may not have applied, but nothing else may show up).
  const unexplained = final.map((stock, d) => stock - world.initial[d]! - known[d]!);
  check(
    isSubsetSum(unexplained, uncertain),
    'stock ≠ initial − reported takes and orders + restocks (a lost, doubled or partial write)',
    { initial: world.initial, final, known, unexplained, uncertain },
  );

  // Each opId applied once per document, and reported so.
  for (let d = 0; d < DOCS; d++) {
    const log = byId.get(world.ids[d]!)?._opIds ?? [];
    for (const opId of ['op-a', 'op-b']) {
      const mine = calls.filter(
        (call) => call.op.kind === 'take' && call.op.doc === d && call.op.opId === opId,
      );
      const outcomes = mine.map((call) => (call.threw ? 'threw' : call.result.outcome));
      const applied = outcomes.filter((o) => o === 'decremented').length;
      const unsure = outcomes.includes('threw');
      check(applied <= 1, `opId ${opId} applied twice on p${d}`, outcomes);
      if (applied === 1) check(log.includes(opId), `opId ${opId} applied but not logged`, log);
      if (!unsure) {
        check(log.includes(opId) === (applied === 1), `op log disagrees for ${opId}`, {
          log,
          outcomes,
        });
        if (outcomes.includes('alreadyApplied')) {
          check(applied === 1, `${opId} reported alreadyApplied, but no call applied it`, outcomes);
        }
      }
    }
  }
}

async function finalDocuments(world: World): Promise<Product[]> {
  return t.db
    .collection<Product>(NAME)
    .find({ _id: { $in: [...world.ids] } })
    .toArray();
}

const worldArb = fc.record({
  floor: fc.nat({ max: 2 }),
  above: fc.array(fc.nat({ max: 12 }), { minLength: DOCS, maxLength: DOCS }),
});

const COMMANDS = [
  'findAndModify',
  'find',
  'update',
  'aggregate',
  'commitTransaction',
  'abortTransaction',
];

test.prop(
  {
    world: worldArb,
    schedule: scheduleArb(stockOpArb, CLIENTS, { maxSteps: 5 }),
    faults: faultsArb(COMMANDS),
  },
  propertyParameters(RUNS),
)(
  `stock takes, restocks and orders (both modes) keep stock = initial − takes + restocks ≥ floor, opIds once, orders whole${CHAOS ? ' (chaos)' : ''}`,
  async ({ world: w, schedule, faults }) => {
    await repeated(async () => {
      const world = await setUp(
        w.above.map((above) => w.floor + above),
        w.floor,
      );
      const calls = await withFaults(t.db, clients.appName, faults, () =>
        runSchedule(clients.all, schedule, (client, op) => execute(world, client, op)),
      );
      verify(world, calls, await finalDocuments(world));
    });
  },
  propertyTimeout(RUNS),
);

/**
 * The naive pattern under the same harness: read the stock, check it, then write the new value.
 * Two takes that read the same stock both succeed and one write overwrites the other.
 */
async function naiveTake(world: World, client: MongoClient, op: StockOp): Promise<Outcome> {
  if (op.kind !== 'take') throw new Error('naive schedules hold takes only');
  const coll = collectionOf(client);
  const doc = await coll.findOne({ _id: world.ids[op.doc]! });
  if (doc === null) return { outcome: 'notFound' };
  if (doc.stock - op.amount < world.floor) return { outcome: 'insufficient' };
  await pause(1);
  await coll.updateOne({ _id: doc._id }, { $set: { stock: doc.stock - op.amount } });
  return { outcome: 'decremented', stockAfter: doc.stock - op.amount };
}

const takeArb: fc.Arbitrary<StockOp> = fc.record({
  kind: fc.constant('take' as const),
  doc: docArb,
  amount: fc.integer({ min: 1, max: 2 }),
  opId: fc.constant(null),
});

test('naive: read-then-write decrement fails the stock property (fast-check finds and shrinks a counterexample)', async () => {
  const details = await fc.check(
    fc.asyncProperty(
      worldArb,
      scheduleArb(takeArb, CLIENTS, { maxSteps: 4 }) as fc.Arbitrary<Schedule<StockOp>>,
      async (w, schedule) => {
        const world = await setUp(
          w.above.map((above) => w.floor + above + 4),
          w.floor,
        );
        const calls = await runSchedule(clients.all, schedule, (client, op) =>
          naiveTake(world, client, op),
        );
        verify(world, calls, await finalDocuments(world), 'naive ');
      },
    ),
    { numRuns: 100 },
  );
  // The harness sees the race: a counterexample, shrunk, with the seed that replays it.
  expect(details.failed).toBe(true);
  // …and it is the race the property describes (a lost update), not some other failure.
  expect(String(details.errorInstance)).toMatch(/stock ≠ initial|below the floor/);
  expect(details.counterexample).not.toBeNull();
  expect(typeof details.seed).toBe('number');
  const [, schedule] = details.counterexample!;
  // A lost update needs two takes: a smaller counterexample would mean the model is wrong.
  const steps = schedule.reduce((sum, list) => sum + list.length, 0);
  expect(steps, fc.defaultReportMessage(details)).toBeGreaterThanOrEqual(2);
}, 60_000);
