/**
 * The races the demo shows, each done the naive way and the safe way under the same load.
 * A scenario reports its final state and whether the business invariant held.
 */
import type { Db } from 'mongodb';
import { addToSetWithCapacity } from '../../src/index.js';
import { race } from '../../src/testing/index.js';

export interface RunResult {
  /** Calls that reported success to their caller. */
  readonly succeeded: number;
  /** What the database holds afterwards, in words. */
  readonly finalState: string;
  /** Did the invariant hold? */
  readonly correct: boolean;
}

export interface Approach {
  readonly name: string;
  /** Runs `attempts` concurrent requests, calling `onDone` as each one finishes. */
  run(db: Db, attempts: number, onDone: () => void): Promise<RunResult>;
}

export interface Scenario {
  readonly title: string;
  readonly seed: string;
  readonly attempts: number;
  readonly invariant: string;
  readonly naive: Approach;
  readonly safe: Approach;
}

interface EventDoc {
  _id: string;
  capacity: number;
  sold: number;
  registrations: string[];
}

async function setUpEvent(db: Db, name: string): Promise<void> {
  const events = db.collection<EventDoc>(name);
  await events.drop();
  await events.insertOne({ _id: 'concert', capacity: 1, sold: 0, registrations: [] });
}

async function eventResult(db: Db, name: string, succeeded: number): Promise<RunResult> {
  const event = await db.collection<EventDoc>(name).findOne({ _id: 'concert' });
  if (event === null) throw new Error('the event document disappeared');
  return {
    succeeded,
    finalState: `sold=${event.sold}, registrations=${event.registrations.length}`,
    correct:
      succeeded <= event.capacity &&
      event.sold === event.registrations.length &&
      event.sold <= event.capacity,
  };
}

/** Releases every booking at once (the testing kit's `race`) and counts the successful ones. */
async function concurrently(
  attempts: number,
  onDone: () => void,
  book: (user: string) => Promise<boolean>,
): Promise<number> {
  const report = await race(attempts, async (i) => {
    try {
      return await book(`user-${i}`);
    } finally {
      onDone();
    }
  });
  if (report.errors.length > 0) throw report.errors[0];
  return report.count('true');
}

/** Seed 004: 50 people try to book the last seat of an event at the same moment. */
export const lastSeat: Scenario = {
  title: 'Ticketing: 50 bookings, 1 seat',
  seed: '004',
  attempts: 50,
  invariant: 'at most 1 booking; sold = registrations',
  naive: {
    name: 'read, check, then write',
    async run(db, attempts, onDone) {
      const name = 'demo_events_naive';
      await setUpEvent(db, name);
      const events = db.collection<EventDoc>(name);
      const succeeded = await concurrently(attempts, onDone, async (user) => {
        const event = await events.findOne({ _id: 'concert' });
        if (event === null || event.sold >= event.capacity || event.registrations.includes(user))
          return false;
        // Between the read above and this write, every other request read the same "1 seat left".
        await events.updateOne(
          { _id: 'concert' },
          { $inc: { sold: 1 }, $push: { registrations: user } },
        );
        return true;
      });
      return eventResult(db, name, succeeded);
    },
  },
  safe: {
    name: 'addToSetWithCapacity',
    async run(db, attempts, onDone) {
      const name = 'demo_events_safe';
      await setUpEvent(db, name);
      const events = db.collection<EventDoc>(name);
      const succeeded = await concurrently(attempts, onDone, async (user) => {
        // The guard (not registered, seat left) and the write are one atomic update.
        const result = await addToSetWithCapacity(events, {
          filter: { _id: 'concert' },
          array: 'registrations',
          member: user,
          counter: 'sold',
          capacity: 'capacity',
        });
        return result.outcome === 'added';
      });
      return eventResult(db, name, succeeded);
    },
  },
};

export const scenarios: readonly Scenario[] = [lastSeat];
