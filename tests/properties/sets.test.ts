/**
 * Properties of the "array with a bound" primitives under random concurrent schedules:
 * - capped cart lines (incrementOrPushArrayItem with `max`, some with repeated opIds), removed
 *   by a plain `$pull` as an application does: one line per product, each within its cap, and
 *   the quantities exact (added − removed = held);
 * - registrations and cancellations (addToSetWithCapacity / removeFromSetWithCapacity): the
 *   counter equals the array's length and never passes the capacity, members are unique, and
 *   every member is there because of exactly one more `added` than `removed`.
 */
import { fc, test } from '@fast-check/vitest';
import type { Collection, MongoClient } from 'mongodb';
import { beforeAll } from 'vitest';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../../src/capacity-set.js';
import { incrementOrPushArrayItem } from '../../src/increment-or-push.js';
import { useTestDatabase } from '../support/mongo.js';
import {
  type Call,
  CHAOS,
  check,
  expectAcceptableErrors,
  faultsArb,
  isSubsetSum,
  propertyParameters,
  propertyTimeout,
  repeated,
  runSchedule,
  scheduleArb,
  usePropertyClients,
  useStatsReport,
  withFaults,
} from './support.js';

const CLIENTS = 4;
const RUNS = 8;

const t = useTestDatabase('prop_sets');
const clients = usePropertyClients(CLIENTS, 'sets');
useStatsReport('sets');
let runCounter = 0;

function collectionOf<T extends { _id: string }>(client: MongoClient, name: string): Collection<T> {
  return client.db(t.db.databaseName).collection<T>(name);
}

// ---------------------------------------------------------------------------------------------
// Capped cart lines
// ---------------------------------------------------------------------------------------------

interface Line {
  sku: string;
  quantity: number;
}
interface Cart {
  _id: string;
  lines: Line[];
  _opIds?: string[];
}

const CARTS = 2;
const SKUS = ['a', 'b', 'c'] as const;
const MAX = 5;

type CartOp =
  | {
      readonly kind: 'add';
      readonly cart: number;
      readonly sku: string;
      readonly qty: number;
      readonly opId: string | null;
    }
  | { readonly kind: 'remove'; readonly cart: number; readonly sku: string };
interface CartOutcome {
  readonly outcome: string;
  /** The line as the call reports it (add), or the quantity the `$pull` removed (remove). */
  readonly quantity?: number;
}

const cartArb = fc.nat({ max: CARTS - 1 });
const cartOpArb: fc.Arbitrary<CartOp> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      cart: cartArb,
      sku: fc.constantFrom(...SKUS),
      qty: fc.integer({ min: 1, max: 3 }),
      opId: fc.option(fc.constantFrom('op-a', 'op-b'), { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('remove' as const),
      cart: cartArb,
      sku: fc.constantFrom(...SKUS),
    }),
  },
);

const CARTS_NAME = 'carts';

beforeAll(async () => {
  await t.db.createCollection(CARTS_NAME);
  await t.db.createCollection(EVENTS_NAME);
});

async function executeCart(ids: readonly string[], client: MongoClient, op: CartOp) {
  const coll = collectionOf<Cart>(client, CARTS_NAME);
  const filter = { _id: ids[op.cart]! };
  if (op.kind === 'remove') {
    // No primitive removes a line: an application `$pull`s it. The before-image says what went.
    const before = await coll.findOneAndUpdate(
      filter,
      { $pull: { lines: { sku: op.sku } } },
      { returnDocument: 'before' },
    );
    const line = before?.lines.find((candidate) => candidate.sku === op.sku);
    return line === undefined
      ? { outcome: 'absent' }
      : { outcome: 'removed', quantity: line.quantity };
  }
  const base = {
    filter,
    array: 'lines',
    match: { sku: op.sku },
    inc: { quantity: op.qty },
    max: { quantity: MAX },
  };
  const result =
    op.opId === null
      ? await incrementOrPushArrayItem<Cart, Line>(coll, base)
      : await incrementOrPushArrayItem<Cart, Line>(coll, { ...base, opId: op.opId });
  if (result.outcome === 'notFound' || result.outcome === 'alreadyApplied') {
    return { outcome: result.outcome };
  }
  return { outcome: result.outcome, quantity: (result.item as Line).quantity };
}

function verifyCarts(
  ids: readonly string[],
  calls: readonly Call<CartOp, CartOutcome>[],
  finals: Cart[],
) {
  expectAcceptableErrors(calls);
  const byId = new Map(finals.map((doc) => [doc._id, doc]));
  for (let c = 0; c < CARTS; c++) {
    const doc = byId.get(ids[c]!);
    check(doc !== undefined, `cart ${c} is gone`);
    const lines = doc!.lines;
    // One line per product, each within its cap.
    const skus = lines.map((line) => line.sku);
    check(new Set(skus).size === skus.length, `cart ${c} holds duplicate lines`, lines);
    for (const line of lines) {
      check(line.quantity >= 1 && line.quantity <= MAX, `cart ${c} line out of bounds`, line);
    }
    for (const sku of SKUS) {
      const mine = calls.filter((call) => call.op.cart === c && call.op.sku === sku);
      if (mine.some((call) => call.threw)) continue; // an unknown outcome: the bounds above still hold
      let added = 0;
      let removed = 0;
      let pushes = 0;
      let removals = 0;
      for (const call of mine) {
        if (call.threw) continue;
        const { op, result } = call;
        if (op.kind === 'add') {
          if (result.outcome === 'pushed' || result.outcome === 'incremented') added += op.qty;
          if (result.outcome === 'pushed') {
            pushes += 1;
            check(result.quantity === op.qty, 'a pushed line reports another quantity', result);
          }
          if (result.outcome === 'incremented') {
            check(
              (result.quantity ?? 0) <= MAX,
              'an increment reports a line past its cap',
              result,
            );
          }
          if (result.outcome === 'limitReached') {
            check(
              (result.quantity ?? 0) + op.qty > MAX,
              'limitReached although the increment fits',
              { op, result },
            );
          }
        } else if (result.outcome === 'removed') {
          removed += result.quantity ?? 0;
          removals += 1;
        }
      }
      const held = lines.find((line) => line.sku === sku)?.quantity ?? 0;
      check(added - removed === held, `cart ${c} ${sku}: added − removed ≠ held`, {
        added,
        removed,
        held,
      });
      check(
        pushes - removals === (held > 0 ? 1 : 0),
        `cart ${c} ${sku}: pushes − removals ≠ lines`,
        {
          pushes,
          removals,
          held,
        },
      );
    }
    // Each opId applied at most once per cart (a limitReached or a repeat records nothing new).
    for (const opId of ['op-a', 'op-b']) {
      const outcomes = calls
        .filter((call) => call.op.kind === 'add' && call.op.cart === c && call.op.opId === opId)
        .map((call) => (call.threw ? 'threw' : call.result.outcome));
      const applied = outcomes.filter((o) => o === 'pushed' || o === 'incremented').length;
      check(applied <= 1, `opId ${opId} applied twice on cart ${c}`, outcomes);
      if (!outcomes.includes('threw')) {
        const logged = (doc!._opIds ?? []).includes(opId);
        check(logged === (applied === 1), `cart ${c}: op log disagrees for ${opId}`, outcomes);
      }
    }
  }
}

const CART_COMMANDS = ['findAndModify'];

test.prop(
  {
    schedule: scheduleArb(cartOpArb, CLIENTS, { maxSteps: 5 }),
    faults: faultsArb(CART_COMMANDS),
  },
  propertyParameters(RUNS),
)(
  `cart adds (capped, opIds) and $pull removals: one line per product, within its cap, quantities exact${CHAOS ? ' (chaos)' : ''}`,
  async ({ schedule, faults }) => {
    await repeated(async () => {
      runCounter += 1;
      const ids = Array.from({ length: CARTS }, (_, c) => `r${runCounter}-cart${c}`);
      const carts = t.db.collection<Cart>(CARTS_NAME);
      await carts.insertMany(ids.map((_id) => ({ _id, lines: [] })));
      const calls = await withFaults(t.db, clients.appName, faults, () =>
        runSchedule(clients.all, schedule, (client, op) => executeCart(ids, client, op)),
      );
      verifyCarts(ids, calls, await carts.find({ _id: { $in: ids } }).toArray());
    });
  },
  propertyTimeout(RUNS),
);

// ---------------------------------------------------------------------------------------------
// Registrations with a capacity
// ---------------------------------------------------------------------------------------------

interface Event {
  _id: string;
  capacity: number;
  attendees: string[];
  sold: number;
}

const EVENTS = 2;
const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'] as const;
const EVENTS_NAME = 'events';

type SeatOp = {
  readonly kind: 'register' | 'cancel';
  readonly event: number;
  readonly user: string;
  /** register: the capacity as a literal or as the document's field. */
  readonly byField: boolean;
};
type SeatOutcome = {
  readonly outcome: string;
  readonly sold?: number;
  readonly capacity?: number;
  readonly member?: boolean;
};

const seatOpArb: fc.Arbitrary<SeatOp> = fc.record({
  kind: fc.constantFrom('register' as const, 'cancel' as const, 'register' as const),
  event: fc.nat({ max: EVENTS - 1 }),
  user: fc.constantFrom(...USERS),
  byField: fc.boolean(),
});

async function executeSeat(
  world: { ids: readonly string[]; capacities: readonly number[] },
  client: MongoClient,
  op: SeatOp,
): Promise<SeatOutcome> {
  const coll = collectionOf<Event>(client, EVENTS_NAME);
  const options = {
    filter: { _id: world.ids[op.event]! },
    array: 'attendees',
    member: op.user,
    counter: 'sold',
  };
  const result =
    op.kind === 'register'
      ? await addToSetWithCapacity(coll, {
          ...options,
          capacity: op.byField ? 'capacity' : world.capacities[op.event]!,
        })
      : await removeFromSetWithCapacity(coll, options);
  if (result.outcome === 'notFound') return { outcome: result.outcome };
  const doc = result.document;
  return {
    outcome: result.outcome,
    sold: doc.sold,
    capacity: doc.capacity,
    member: doc.attendees.includes(op.user),
  };
}

function verifySeats(
  world: { ids: readonly string[]; capacities: readonly number[] },
  calls: readonly Call<SeatOp, SeatOutcome>[],
  finals: Event[],
) {
  expectAcceptableErrors(calls);
  const byId = new Map(finals.map((doc) => [doc._id, doc]));
  // Membership per (event, user): the reported adds minus removes, plus (chaos) some subset of
  // the calls that threw.
  const pairs = world.ids.flatMap((_, e) => USERS.map((user) => ({ e, user })));
  const index = (e: number, user: string) => e * USERS.length + USERS.indexOf(user as never);
  const known = pairs.map(() => 0);
  const uncertain: number[][] = [];
  for (const call of calls) {
    const i = index(call.op.event, call.op.user);
    const sign = call.op.kind === 'register' ? 1 : -1;
    if (call.threw) {
      const vector = pairs.map(() => 0);
      vector[i] = sign;
      uncertain.push(vector);
      continue;
    }
    const { op, result } = call;
    const allowed =
      op.kind === 'register' ? ['added', 'alreadyMember', 'full'] : ['removed', 'notMember'];
    check(allowed.includes(result.outcome), `unexpected outcome for ${op.kind}`, result);
    if (result.outcome === 'added' || result.outcome === 'removed') known[i]! += sign;
    // Each outcome agrees with the document it reports.
    if (result.outcome === 'added' || result.outcome === 'alreadyMember') {
      check(result.member === true, `${result.outcome} but the member is not in the array`, result);
    }
    if (result.outcome === 'removed') {
      check(result.member === false, 'removed but the member is in the array', result);
    }
    // fast-check found `notMember` with a document holding the member (seed 726395983: a cancel
    // racing a register of the same user); the removal now retries while its read shows the
    // member, as the add does for `full`.
    if (result.outcome === 'notMember') {
      check(result.member === false, 'notMember but the member is in the array', result);
    }

    if (result.outcome === 'full') {
      check((result.sold ?? 0) >= world.capacities[op.event]!, 'full below capacity', result);
    }
    if (result.sold !== undefined) {
      check(
        result.sold <= world.capacities[op.event]!,
        'a reported counter passes capacity',
        result,
      );
    }
  }
  const final = pairs.map(({ e, user }) =>
    byId.get(world.ids[e]!)?.attendees.includes(user) === true ? 1 : 0,
  );
  for (let e = 0; e < EVENTS; e++) {
    const doc = byId.get(world.ids[e]!);
    check(doc !== undefined, `event ${e} is gone`);
    const { attendees, sold } = doc!;
    check(sold === attendees.length, `event ${e}: counter ≠ array length`, doc);
    check(sold <= world.capacities[e]!, `event ${e}: past capacity`, doc);
    check(new Set(attendees).size === attendees.length, `event ${e}: duplicate members`, doc);
  }
  const unexplained = final.map((value, i) => value - known[i]!);
  check(isSubsetSum(unexplained, uncertain), 'membership ≠ added − removed', {
    final,
    known,
    unexplained,
  });
}

test.prop(
  {
    capacities: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: EVENTS, maxLength: EVENTS }),
    schedule: scheduleArb(seatOpArb, CLIENTS, { maxSteps: 6 }),
    faults: faultsArb(['findAndModify', 'find', 'aggregate']),
  },
  propertyParameters(RUNS),
)(
  `registrations and cancellations: counter = members ≤ capacity, members unique, added − removed = held${CHAOS ? ' (chaos)' : ''}`,
  async ({ capacities, schedule, faults }) => {
    await repeated(async () => {
      runCounter += 1;
      const ids = capacities.map((_, e) => `r${runCounter}-event${e}`);
      const events = t.db.collection<Event>(EVENTS_NAME);
      await events.insertMany(
        ids.map((_id, e) => ({ _id, capacity: capacities[e]!, attendees: [], sold: 0 })),
      );
      const world = { ids, capacities };
      const calls = await withFaults(t.db, clients.appName, faults, () =>
        runSchedule(clients.all, schedule, (client, op) => executeSeat(world, client, op)),
      );
      verifySeats(world, calls, await events.find({ _id: { $in: ids } }).toArray());
    });
  },
  propertyTimeout(RUNS),
);
