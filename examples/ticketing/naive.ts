// DO NOT COPY: the racy read-check-write of seed 004, kept to show (in the tests and the demo) what goes wrong. Use app.ts.
/**
 * The same routes and responses as app.ts, written the way seed 004's "before" code is: read
 * the event, check in JavaScript (seat left? already registered?), then write unconditionally.
 * Between the read and the write every other request can read the same "1 seat left":
 *
 * - 50 concurrent registrations for the last seat all pass the check: overbooked;
 * - a double click registers the same user twice (`$push` twice, `tickets_sold` += 2);
 * - two concurrent cancellations both see the user, `$pull` removes it once but `$inc: -1`
 *   runs twice: `tickets_sold` no longer matches the registrations.
 *
 * `afterRead` is awaited between the read and the write of every request (before any early
 * return, so every request reaches it). Tests and the demo pass a barrier from
 * `mongo-atomics/testing` (`barrier(n)`): every request reads before any writes, so the race
 * shows on EVERY run. Without the hook the window is narrower but real: in production, a slow
 * network, a GC pause or a busy server widen it whenever it matters most (the on-sale minute).
 */
import type { Express } from 'express';
import { Router } from 'express';
import type { Db } from 'mongodb';
import {
  alreadyRegistered,
  assemble,
  eventNotFound,
  eventsOf,
  full,
  notRegistered,
  parseEventParams,
  parseRegistrationBody,
  parseRegistrationParams,
  summary,
} from './events.js';

export interface NaiveOptions {
  /** Awaited between each write route's read and its write (tests: a `barrier(n)`). */
  readonly afterRead?: () => Promise<void>;
}

export function createNaiveApp(db: Db, options: NaiveOptions = {}): Express {
  const events = eventsOf(db);
  const afterRead = options.afterRead ?? (async () => {});
  const writes = Router();

  writes.post('/events/:eventId/registrations', async (req, res) => {
    const { eventId } = parseEventParams(req);
    const { userId } = parseRegistrationBody(req);
    const event = await events.findOne({ _id: eventId });
    await afterRead();
    if (event === null) throw eventNotFound(eventId);
    if (event.registration_ids.includes(userId)) throw alreadyRegistered(eventId, userId);
    if (event.tickets_sold >= event.capacity) throw full(event);
    // WRONG: the checks above were made on a copy that may be stale by now.
    await events.updateOne(
      { _id: eventId },
      { $inc: { tickets_sold: 1 }, $push: { registration_ids: userId } },
    );
    const after = { ...event, tickets_sold: event.tickets_sold + 1 };
    res
      .status(201)
      .location(`/events/${eventId.toHexString()}/registrations/${userId}`)
      .json({ eventId: eventId.toHexString(), userId, event: summary(after) });
  });

  writes.delete('/events/:eventId/registrations/:userId', async (req, res) => {
    const { eventId, userId } = parseRegistrationParams(req);
    const event = await events.findOne({ _id: eventId });
    await afterRead();
    if (event === null) throw eventNotFound(eventId);
    if (!event.registration_ids.includes(userId)) throw notRegistered(eventId, userId);
    // WRONG: a concurrent cancellation of the same user passed the same check; both decrement.
    await events.updateOne(
      { _id: eventId },
      { $inc: { tickets_sold: -1 }, $pull: { registration_ids: userId } },
    );
    const after = { ...event, tickets_sold: event.tickets_sold - 1 };
    res.json({ eventId: eventId.toHexString(), userId, event: summary(after) });
  });

  return assemble(db, writes);
}
