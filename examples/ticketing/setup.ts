/**
 * Startup work for the ticketing service: the indexes seed 004 lists, and a few sample events.
 * Safe to run on every start: index creation is a no-op when the index exists, and the sample
 * events are inserted only if missing (their registrations survive a restart).
 */
import { type Db, ObjectId } from 'mongodb';
import { type EventDoc, eventsOf } from './events.js';

/** The sample events' ids (fixed, so the printed curl works after a restart too). */
export const SAMPLE = {
  /** One seat: the seed's stress case. Two users registering shows 201 then 409 full. */
  lastSeat: new ObjectId('665f00000000000000000001'),
  /** Room for 100. */
  meetup: new ObjectId('665f00000000000000000002'),
  /** Already full (2 of 2), to see 409 full at once. */
  soldOut: new ObjectId('665f00000000000000000003'),
} as const;

export interface Prepared {
  readonly lastSeat: ObjectId;
  readonly meetup: ObjectId;
  readonly soldOut: ObjectId;
}

const day = 24 * 60 * 60 * 1000;

export async function prepare(db: Db): Promise<Prepared> {
  const events = eventsOf(db);
  // Seed 004's indexes. `starts_at` serves GET /events (soonest first). The multikey index on
  // `registration_ids` serves "is this user registered?" (GET .../registrations/:userId).
  // Neither is required for correctness: the registration guard is evaluated on the one
  // event document the `_id` selects, atomically, whatever the indexes.
  await events.createIndex({ starts_at: 1 }, { name: 'events_starts_at' });
  await events.createIndex({ registration_ids: 1 }, { name: 'events_reg_ids' });

  const now = Date.now();
  const samples: EventDoc[] = [
    {
      _id: SAMPLE.lastSeat,
      name: 'Last seat at the jazz club',
      starts_at: new Date(now + 7 * day),
      capacity: 1,
      tickets_sold: 0,
      registration_ids: [],
    },
    {
      _id: SAMPLE.meetup,
      name: 'MongoDB meetup',
      starts_at: new Date(now + 14 * day),
      capacity: 100,
      tickets_sold: 0,
      registration_ids: [],
    },
    {
      _id: SAMPLE.soldOut,
      name: 'Sold-out premiere',
      starts_at: new Date(now + 3 * day),
      capacity: 2,
      tickets_sold: 2,
      registration_ids: ['alice', 'bob'],
    },
  ];
  for (const { _id, ...fields } of samples) {
    // Insert if missing, never overwrite: an existing event keeps its registrations.
    await events.updateOne({ _id }, { $setOnInsert: fields }, { upsert: true });
  }
  return SAMPLE;
}
