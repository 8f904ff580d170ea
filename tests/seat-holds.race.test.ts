/**
 * The naive seat-hold design ("hold = push a hold and count it; a cron job removes expired holds
 * later"), under the same harness as the primitives: a doubled sweeper gives places back twice,
 * a confirmation racing the sweeper makes a member of a place already given back, and a late
 * sweeper leaves a full event with only lapsed holds refusing buyers. holdPlace / confirmPlace /
 * releaseExpiredPlaces hold under the same storms.
 */
import type { Collection, Document, MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { confirmPlace, holdPlace, releaseExpiredPlaces } from '../src/seat-holds.js';
import { naiveVersusSafe } from '../src/testing/index.js';
import { useTestDatabase } from './support/mongo.js';
import { useRaceClients } from './support/race.js';

const t = useTestDatabase('seat_holds_race');
const CALLS = 6;
const pool = useRaceClients(CALLS);

type Event = Document & { _id: string };
const set = { filter: { _id: 'e1' }, array: 'members', counter: 'sold' } as const;
const lapse = () => new Promise((resolve) => setTimeout(resolve, 5));
const via = (i: number, name: string): Collection<Event> =>
  (pool.all[i] as MongoClient).db(t.db.databaseName).collection<Event>(name);

/**
 * A full 2-place event whose two holds have lapsed (held for 1 ms, by the server's clock:
 * taken through holdPlace, so the record shape is the one both designs read).
 */
async function fullOfLapsedHolds(): Promise<string> {
  const name = t.uniqueName('events');
  const coll = t.db.collection<Event>(name);
  await coll.insertOne({ _id: 'e1', capacity: 2, sold: 0, members: [] });
  for (const [member, holdId] of [
    ['a', 'ha'],
    ['b', 'hb'],
  ] as const) {
    await holdPlace(coll, { ...set, capacity: 'capacity', member, holdId, ttlMs: 1 });
  }
  await lapse();
  return name;
}

/** members + live holds = counter ≤ capacity. */
async function accounting(name: string): Promise<string[]> {
  const doc = (await t.db.collection<Event>(name).findOne({ _id: 'e1' })) as Document;
  const members = doc.members as unknown[];
  const live = (doc._holds as Document[]).filter((h) => h.state === 'held');
  const problems: string[] = [];
  if (doc.sold !== members.length + live.length) {
    problems.push(`counter ${doc.sold} ≠ ${members.length} members + ${live.length} live holds`);
  }
  if (members.length + live.length > doc.capacity) {
    problems.push(
      `${members.length} members + ${live.length} holds exceed capacity ${doc.capacity}`,
    );
  }
  if (new Set(members).size !== members.length) problems.push('a member is in twice');
  return problems;
}

/** The naive cron job: read the lapsed holds, then pull them and give their places back. */
async function naiveSweep(coll: Collection<Event>, sync: () => Promise<void>) {
  const doc = (await coll.findOne({ _id: 'e1' })) as Document;
  const gone = (doc._holds as Document[]).filter(
    (h) => h.state === 'held' && h.expiresAt <= new Date(),
  );
  await sync();
  await coll.updateOne({ _id: 'e1' }, {
    $pull: { _holds: { holdId: { $in: gone.map((h) => h.holdId) } } },
    $inc: { sold: -gone.length },
  } as Document);
  return { outcome: 'swept' };
}

/** The naive confirmation: the hold record is there, so make its member a member. */
async function naiveConfirm(coll: Collection<Event>, holdId: string, sync: () => Promise<void>) {
  const doc = (await coll.findOne({ _id: 'e1' })) as Document;
  const hold = (doc._holds as Document[]).find((h) => h.holdId === holdId && h.state === 'held');
  await sync();
  if (hold === undefined) return { outcome: 'notFound' };
  await coll.updateOne({ _id: 'e1' }, {
    $push: { members: hold.member },
    $pull: { _holds: { holdId } },
  } as Document);
  return { outcome: 'confirmed' };
}

describe('seat holds under a doubled sweeper racing confirmations', () => {
  it('naive: places given back twice and members made of given-back places; holds: exact', async () => {
    const result = await naiveVersusSafe({
      invariant: 'counter = members + live holds ≤ capacity',
      calls: CALLS,
      setup: fullOfLapsedHolds,
      naive: (i, { state, sync }) => {
        const coll = via(i, state);
        if (i < 3) return naiveSweep(coll, sync);
        return naiveConfirm(coll, i % 2 === 0 ? 'ha' : 'hb', sync);
      },
      safe: async (i, { state, sync }) => {
        const coll = via(i, state);
        await sync();
        if (i < 3) return releaseExpiredPlaces(coll, { counter: 'sold' });
        return confirmPlace(coll, { ...set, holdId: i % 2 === 0 ? 'ha' : 'hb' });
      },
      check: accounting,
    });
    expect(result.safe.report.count('expired')).toBe(3);
    expect(result.safe.report.count('confirmed')).toBe(0);
  });
});

describe('seat holds under a late sweeper', () => {
  it('naive: a full event of lapsed holds refuses every buyer; holdPlace admits two', async () => {
    await naiveVersusSafe({
      invariant: 'a buyer is admitted when every hold has lapsed (no stranded place)',
      calls: CALLS,
      setup: fullOfLapsedHolds,
      naive: async (i, { state, sync }) => {
        const coll = via(i, state);
        const doc = (await coll.findOne({ _id: 'e1' })) as Document;
        await sync();
        if (doc.sold >= doc.capacity) return { outcome: 'full' };
        const r = await coll.updateOne({ _id: 'e1', sold: doc.sold }, {
          $inc: { sold: 1 },
          $push: { _holds: { holdId: `n${i}`, state: 'held' } },
        } as Document);
        return { outcome: r.modifiedCount === 1 ? 'held' : 'full' };
      },
      safe: async (i, { state, sync }) => {
        await sync();
        return holdPlace(via(i, state), {
          ...set,
          capacity: 'capacity',
          member: `buyer${i}`,
          holdId: `n${i}`,
          ttlMs: 60_000,
        });
      },
      check: async (state, report) => [
        ...(report.count('held') === 2 ? [] : [`${report.count('held')} buyers admitted, not 2`]),
        ...(await accounting(state)),
      ],
    });
  });
});
