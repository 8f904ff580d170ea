/**
 * Properties of seat holds (holdPlace / confirmPlace / releasePlace / releaseExpiredPlaces)
 * under random concurrent schedules of hold (short ttl: lapses during the run; long ttl: stays
 * live), confirm, release and sweep, on events of random capacity:
 * - counter = members + live holds ≤ capacity, members unique, hold ids unique;
 * - each hold settled once: a hold id is `held` at most once; of `confirmed`, `released` and
 *   the expiry exactly one wins, and the final record says which;
 * - members are exactly the members of confirmed holds;
 * - lapsed holds free places: after a final sweep, the only live holds are long-ttl ones, and
 *   a `full` refusal reports a document whose members + live holds fill the capacity.
 */
import { fc, test } from '@fast-check/vitest';
import type { Document, MongoClient } from 'mongodb';
import { beforeAll } from 'vitest';
import {
  confirmPlace,
  holdPlace,
  releaseExpiredPlaces,
  releasePlace,
} from '../../src/seat-holds.js';
import { sleep } from '../support/async.js';
import { useTestDatabase } from '../support/mongo.js';
import {
  type Call,
  check,
  propertyParameters,
  propertyTimeout,
  repeated,
  resolvedOnly,
  runSchedule,
  scheduleArb,
  usePropertyClients,
} from './support.js';

const CLIENTS = 4;
const RUNS = 10;
const EVENTS_NAME = 'events';
const HOLD_IDS = ['h0', 'h1', 'h2', 'h3', 'h4'] as const;
const USERS = ['u0', 'u1', 'u2', 'u3'] as const;
const SHORT = 2;
const LONG = 600_000;

const t = useTestDatabase('prop_seat_holds');
const clients = usePropertyClients(CLIENTS, 'seat-holds');
let runCounter = 0;

beforeAll(async () => {
  await t.db.createCollection(EVENTS_NAME);
});

type Op =
  | {
      readonly kind: 'hold';
      readonly holdId: string;
      readonly user: string;
      readonly short: boolean;
    }
  | { readonly kind: 'confirm' | 'release'; readonly holdId: string }
  | { readonly kind: 'sweep' };
interface Outcome {
  readonly outcome: string;
  readonly document?: Document;
  readonly hold?: { readonly holdId: string; readonly member: unknown };
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('hold' as const),
      holdId: fc.constantFrom(...HOLD_IDS),
      user: fc.constantFrom(...USERS),
      short: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('confirm' as const, 'release' as const),
      holdId: fc.constantFrom(...HOLD_IDS),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const) }) },
);

async function execute(id: string, client: MongoClient, op: Op): Promise<Outcome> {
  const coll = client.db(t.db.databaseName).collection<Document & { _id: string }>(EVENTS_NAME);
  const set = { filter: { _id: id }, array: 'members', counter: 'sold' };
  if (op.kind === 'sweep') {
    await releaseExpiredPlaces(coll, { filter: { _id: id }, counter: 'sold' });
    return { outcome: 'swept' };
  }
  if (op.kind === 'hold') {
    return holdPlace(coll, {
      ...set,
      capacity: 'capacity',
      member: op.user,
      holdId: op.holdId,
      ttlMs: op.short ? SHORT : LONG,
    });
  }
  const settle = op.kind === 'confirm' ? confirmPlace : releasePlace;
  return settle(coll, { ...set, holdId: op.holdId });
}

const liveOf = (doc: Document): Document[] =>
  ((doc._holds ?? []) as Document[]).filter((h) => h.state === 'held');

function verify(capacity: number, calls: readonly Call<Op, Outcome>[], final: Document): void {
  resolvedOnly(calls);
  const members = final.members as string[];
  const records = (final._holds ?? []) as Document[];
  const live = liveOf(final);
  check(final.sold === members.length + live.length, 'counter ≠ members + live holds', final);
  check(members.length + live.length <= capacity, 'members + live holds past capacity', final);
  check(new Set(members).size === members.length, 'a member is in twice', final);
  const holders = [...members, ...live.map((h) => h.member)];
  check(new Set(holders).size === holders.length, 'a member holds two places', final);
  const ids = records.map((h) => h.holdId);
  check(new Set(ids).size === ids.length, 'a hold id has two records', final);
  const confirmedMembers = records.filter((h) => h.state === 'confirmed').map((h) => h.member);
  check(
    JSON.stringify([...members].sort()) === JSON.stringify([...confirmedMembers].sort()),
    'members ≠ members of confirmed holds',
    final,
  );
  for (const holdId of HOLD_IDS) {
    const mine = calls.filter((c) => c.op.kind !== 'sweep' && c.op.holdId === holdId);
    const said = (outcome: string) =>
      mine.filter((c) => !c.threw && c.result.outcome === outcome).length;
    const record = records.find((h) => h.holdId === holdId);
    check(said('held') <= 1, `${holdId} held twice`, mine);
    check(said('held') === (record === undefined ? 0 : 1), `${holdId}: record ≠ held`, mine);
    check(said('confirmed') + said('released') <= 1, `${holdId} settled twice`, mine);
    if (record === undefined) continue;
    const wins = { confirmed: said('confirmed'), released: said('released') };
    if (record.state === 'confirmed')
      check(wins.confirmed === 1, `${holdId}: confirmed, unreported`);
    if (record.state === 'released') check(wins.released === 1, `${holdId}: released, unreported`);
    if (record.state === 'expired' || record.state === 'held') {
      check(wins.confirmed + wins.released === 0, `${holdId}: a winner, yet ${record.state}`);
    }
    if (said('expired') > 0)
      check(record.state === 'expired', `${holdId}: expired, yet ${record.state}`);
    const taken = mine.find((c) => !c.threw && c.result.outcome === 'held');
    if (taken !== undefined && taken.op.kind === 'hold' && taken.op.short) {
      check(record.state !== 'held', `${holdId}: a lapsed hold is still live after the sweep`);
    }
  }
  for (const call of calls) {
    if (call.threw || call.result.outcome !== 'full') continue;
    const doc = call.result.document as Document;
    check(
      (doc.members as unknown[]).length + liveOf(doc).length >= capacity,
      'full with a free place',
      doc,
    );
  }
}

test.prop(
  {
    capacity: fc.integer({ min: 1, max: 3 }),
    schedule: scheduleArb(opArb, CLIENTS, { maxSteps: 6 }),
  },
  propertyParameters(RUNS),
)(
  'holds, confirmations, releases, expiries and sweeps: counter = members + live holds ≤ capacity, each hold settled once, lapsed holds free places',
  async ({ capacity, schedule }) => {
    await repeated(async () => {
      runCounter += 1;
      const id = `r${runCounter}-event`;
      const events = t.db.collection<Document & { _id: string }>(EVENTS_NAME);
      await events.insertOne({ _id: id, capacity, members: [], sold: 0 });
      const calls = await runSchedule(clients.all, schedule, (client, op) =>
        execute(id, client, op),
      );
      // Every short hold has lapsed by now (server time); one sweep reclaims what is left.
      await sleep(SHORT + 3);
      await releaseExpiredPlaces(events, { filter: { _id: id }, counter: 'sold' });
      verify(capacity, calls, (await events.findOne({ _id: id })) as Document);
    });
  },
  propertyTimeout(RUNS),
);
