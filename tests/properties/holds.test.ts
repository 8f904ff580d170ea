/**
 * Property: random concurrent interleavings of holds (short and long ttl, repeated hold ids),
 * confirms, releases, expiry and sweeps on one hot document keep the stock exact (stock + live
 * held + confirmed = initial), never below the floor, each hold id held once and settled at most
 * once, and every call's reported outcome in agreement with what the document records.
 */
import { fc, test } from '@fast-check/vitest';
import type { Collection, Document, MongoClient } from 'mongodb';
import { expect } from 'vitest';
import { confirmHold, holdQuantity, releaseExpiredHolds, releaseHold } from '../../src/holds.js';
import { useTestDatabase } from '../support/mongo.js';
import {
  type Call,
  CHAOS,
  check,
  expectAcceptableErrors,
  faultsArb,
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
  _holds?: { id: string; amount: number; expiresAt: Date }[];
  _holdsSettled?: { id: string; amount: number; outcome: string }[];
}

const CLIENTS = 4;
const RUNS = 20;
const LONG = 60_000;
const IDS = ['h0', 'h1', 'h2'] as const;

type HoldOp =
  | { readonly kind: 'hold'; readonly id: string; readonly amount: number; readonly ttl: number }
  | { readonly kind: 'confirm' | 'release'; readonly id: string }
  | { readonly kind: 'sweep' };
type Outcome = {
  readonly outcome: string;
  readonly amount?: number;
  readonly available?: number;
  readonly stockAfter?: number;
  readonly settled?: string;
};

const idArb = fc.constantFrom(...IDS);
const opArb: fc.Arbitrary<HoldOp> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('hold' as const),
      id: idArb,
      amount: fc.integer({ min: 1, max: 3 }),
      // Short holds lapse while the schedule runs (pauses are 0-2 ms, calls take ~1 ms).
      ttl: fc.constantFrom(1, 3, 10, LONG, LONG),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('confirm' as const), id: idArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), id: idArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const) }) },
);

const t = useTestDatabase('prop_holds');
const clients = usePropertyClients(CLIENTS, 'holds');
useStatsReport('holds');
const NAME = 'products';

let runCounter = 0;

interface World {
  readonly id: string;
  readonly floor: number;
  readonly initial: number;
}

/** The holds calls under test: the one that follows the contract. */
interface HoldsImpl {
  hold: typeof holdQuantity;
  confirm: typeof confirmHold;
  release: typeof releaseHold;
  sweep: typeof releaseExpiredHolds;
}
const REAL: HoldsImpl = {
  hold: holdQuantity,
  confirm: confirmHold,
  release: releaseHold,
  sweep: releaseExpiredHolds,
};

async function setUp(initial: number, floor: number): Promise<World> {
  runCounter += 1;
  const id = `r${runCounter}`;
  await t.db.collection<Product>(NAME).insertOne({ _id: id, stock: initial });
  return { id, floor, initial };
}

function collectionOf(client: MongoClient): Collection<Product> {
  return client.db(t.db.databaseName).collection<Product>(NAME);
}

async function execute(
  impl: HoldsImpl,
  world: World,
  client: MongoClient,
  op: HoldOp,
): Promise<Outcome> {
  const coll = collectionOf(client);
  const filter = { _id: world.id };
  switch (op.kind) {
    case 'hold': {
      const r = await impl.hold(coll, {
        filter,
        field: 'stock',
        amount: op.amount,
        holdId: op.id,
        ttlMs: op.ttl,
        floor: world.floor,
      });
      if (r.outcome === 'held') return { outcome: r.outcome, stockAfter: r.document.stock };
      if (r.outcome === 'insufficient') return { outcome: r.outcome, available: r.available };
      if (r.outcome === 'alreadySettled') return { outcome: r.outcome, settled: r.settled };
      return { outcome: r.outcome };
    }
    case 'confirm':
    case 'release': {
      const settle = op.kind === 'confirm' ? impl.confirm : impl.release;
      const r = await settle(coll, { filter, field: 'stock', holdId: op.id });
      return r.outcome === 'notFound' || r.outcome === 'unknownHold'
        ? { outcome: r.outcome }
        : {
            outcome: r.outcome,
            amount: r.amount,
            ...(r.document === undefined ? {} : { stockAfter: r.document.stock }),
          };
    }
    case 'sweep': {
      const r = await impl.sweep(coll, { field: 'stock', filter });
      return { outcome: r.reclaimed > 0 ? 'swept' : 'nothingToSweep' };
    }
  }
}

const ALLOWED: Record<HoldOp['kind'], readonly string[]> = {
  hold: ['held', 'alreadyHeld', 'alreadySettled', 'insufficient', 'tooManyHolds'],
  confirm: ['confirmed', 'expired', 'alreadyConfirmed', 'alreadyReleased', 'unknownHold'],
  release: ['released', 'expired', 'alreadyConfirmed', 'alreadyReleased', 'unknownHold'],
  sweep: ['swept', 'nothingToSweep'],
};

/** What the log must say about an id, given what a call reported about it. */
const IMPLIES: Readonly<Record<string, string>> = {
  confirmed: 'confirmed',
  alreadyConfirmed: 'confirmed',
  released: 'released',
  alreadyReleased: 'released',
  expired: 'expired',
};

function verify(world: World, calls: readonly Call<HoldOp, Outcome>[], final: Product | null) {
  expectAcceptableErrors(calls);
  check(final !== null, 'the document is gone');
  const doc = final as Product;
  const live = doc._holds ?? [];
  const log = doc._holdsSettled ?? [];

  check(doc.stock >= world.floor, 'stock below the floor', doc);
  // Each id recorded at most once: live, or settled once.
  const recorded = [...live.map((h) => h.id), ...log.map((h) => h.id)];
  check(new Set(recorded).size === recorded.length, 'a hold id recorded twice', doc);
  // Conservation, from the document alone: nothing created, nothing lost.
  const sum = (list: readonly { amount: number }[]) => list.reduce((s, h) => s + h.amount, 0);
  const confirmed = log.filter((h) => h.outcome === 'confirmed');
  check(
    doc.stock + sum(live) + sum(confirmed) === world.initial,
    'stock + live held + confirmed ≠ initial (oversold or stranded)',
    { initial: world.initial, doc },
  );

  const settledAs = new Map(log.map((h) => [h.id, h]));
  const liveById = new Map(live.map((h) => [h.id, h]));
  const heldBy = new Map<string, HoldOp & { kind: 'hold' }>();
  const thrownHolds = new Set<string>();
  const winners = new Map<string, string[]>();
  for (const call of calls) {
    const { op } = call;
    if (call.threw) {
      if (op.kind === 'hold') thrownHolds.add(op.id);
      continue;
    }
    const { result } = call;
    check(ALLOWED[op.kind].includes(result.outcome), `unexpected outcome for ${op.kind}`, result);
    if (result.stockAfter !== undefined) {
      check(result.stockAfter >= world.floor, 'a reported document below the floor', result);
    }
    if (op.kind === 'hold') {
      if (result.outcome === 'held') {
        check(!heldBy.has(op.id), `hold id ${op.id} held twice`, calls);
        heldBy.set(op.id, op);
      }
      if (result.outcome === 'insufficient') {
        check(
          (result.available ?? -1) >= 0 && (result.available ?? 0) < op.amount,
          'insufficient, yet enough was available',
          result,
        );
      }
      if (result.outcome === 'alreadySettled') {
        check(settledAs.get(op.id)?.outcome === result.settled, 'alreadySettled disagrees', {
          result,
          log,
        });
      }
      continue;
    }
    if (op.kind === 'sweep') continue;
    const implied = IMPLIES[result.outcome];
    if (implied !== undefined) {
      check(settledAs.get(op.id)?.outcome === implied, `${op.kind} said ${result.outcome}`, {
        id: op.id,
        log,
      });
      check(result.amount === settledAs.get(op.id)?.amount, 'reported amount differs', result);
    }
    if (result.outcome === 'confirmed' || result.outcome === 'released') {
      winners.set(op.id, [...(winners.get(op.id) ?? []), result.outcome]);
    }
  }
  // At most one confirm or release wins per hold id.
  for (const [id, won] of winners) check(won.length === 1, `hold ${id} settled twice`, won);
  // The document holds exactly the holds that calls reported taken (in chaos mode, possibly
  // also those of calls that threw), with their amounts; a long hold never expires here.
  for (const id of IDS) {
    const held = heldBy.get(id);
    const inDoc = liveById.get(id) ?? settledAs.get(id);
    if (held === undefined) {
      check(inDoc === undefined || thrownHolds.has(id), `hold ${id} recorded, never reported`, doc);
      continue;
    }
    check(inDoc !== undefined, `hold ${id} reported held, but not recorded`, doc);
    check(inDoc?.amount === held.amount, `hold ${id} recorded with another amount`, doc);
    if (held.ttl === LONG) {
      check(settledAs.get(id)?.outcome !== 'expired', `long hold ${id} expired`, doc);
    }
  }
}

const worldArb = fc.record({ floor: fc.nat({ max: 2 }), above: fc.nat({ max: 10 }) });

async function runOnce(
  impl: HoldsImpl,
  w: { floor: number; above: number },
  schedule: Schedule<HoldOp>,
) {
  const world = await setUp(w.floor + w.above, w.floor);
  const calls = await runSchedule(clients.all, schedule, (client, op) =>
    execute(impl, world, client, op),
  );
  return { world, calls };
}

test.prop(
  {
    world: worldArb,
    schedule: scheduleArb(opArb, CLIENTS, { maxSteps: 6 }),
    faults: faultsArb(['findAndModify', 'update']),
  },
  propertyParameters(RUNS),
)(
  `holds, confirms, releases, expiry and sweeps keep stock + held + confirmed = initial ≥ floor, each hold settled once${CHAOS ? ' (chaos)' : ''}`,
  async ({ world: w, schedule, faults }) => {
    await repeated(async () => {
      const world = await setUp(w.floor + w.above, w.floor);
      const calls = await withFaults(t.db, clients.appName, faults, () =>
        runSchedule(clients.all, schedule, (client, op) => execute(REAL, world, client, op)),
      );
      verify(world, calls, await t.db.collection<Product>(NAME).findOne({ _id: world.id }));
    });
  },
  propertyTimeout(RUNS),
);

/**
 * The naive design under the same harness and model: a hold decrements at once; confirm and
 * release read the hold record, then write; the sweep reads the lapsed holds, then gives them
 * back. Each read-then-write lets a concurrent settle (or a second sweeper) act on the same hold.
 */
const NAIVE: HoldsImpl = {
  hold: REAL.hold,
  confirm: (async (coll: Collection<Document>, o: { filter: Document; holdId: string }) => {
    const doc = await coll.findOne(o.filter);
    const h = (doc?._holds as Product['_holds'])?.find((x) => x.id === o.holdId);
    if (h === undefined) return { outcome: 'unknownHold' };
    await new Promise((resolve) => setTimeout(resolve, 1));
    await coll.updateOne(o.filter, {
      $pull: { _holds: { id: o.holdId } },
      $push: { _holdsSettled: { id: o.holdId, amount: h.amount, outcome: 'confirmed' } },
    } as Document);
    return { outcome: 'confirmed', amount: h.amount };
  }) as unknown as typeof confirmHold,
  release: (async (coll: Collection<Document>, o: { filter: Document; holdId: string }) => {
    const doc = await coll.findOne(o.filter);
    const h = (doc?._holds as Product['_holds'])?.find((x) => x.id === o.holdId);
    if (h === undefined) return { outcome: 'unknownHold' };
    await new Promise((resolve) => setTimeout(resolve, 1));
    await coll.updateOne(o.filter, {
      $inc: { stock: h.amount },
      $pull: { _holds: { id: o.holdId } },
      $push: { _holdsSettled: { id: o.holdId, amount: h.amount, outcome: 'released' } },
    } as Document);
    return { outcome: 'released', amount: h.amount };
  }) as unknown as typeof releaseHold,
  sweep: (async (coll: Collection<Document>, o: { filter: Document }) => {
    const doc = await coll.findOne(o.filter);
    const now = new Date();
    const lapsed = ((doc?._holds ?? []) as NonNullable<Product['_holds']>).filter(
      (h) => h.expiresAt <= now,
    );
    await new Promise((resolve) => setTimeout(resolve, 1));
    for (const h of lapsed) {
      await coll.updateOne(o.filter, {
        $inc: { stock: h.amount },
        $pull: { _holds: { id: h.id } },
        $push: { _holdsSettled: { id: h.id, amount: h.amount, outcome: 'expired' } },
      } as Document);
    }
    return { matched: lapsed.length > 0 ? 1 : 0, reclaimed: lapsed.length > 0 ? 1 : 0 };
  }) as unknown as typeof releaseExpiredHolds,
};

test('naive: read-then-write settles and sweeps fail the holds property (fast-check finds a counterexample)', async () => {
  const details = await fc.check(
    fc.asyncProperty(worldArb, scheduleArb(opArb, CLIENTS, { maxSteps: 5 }), async (w, s) => {
      const { world, calls } = await runOnce(NAIVE, w, s);
      verify(world, calls, await t.db.collection<Product>(NAME).findOne({ _id: world.id }));
    }),
    { numRuns: 200 },
  );
  expect(details.failed).toBe(true);
  expect(String(details.errorInstance)).toMatch(
    /settled twice|recorded twice|≠ initial|said|below the floor|not recorded|another amount/,
  );
}, 120_000);
