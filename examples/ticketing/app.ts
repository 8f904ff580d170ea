/**
 * The ticketing service (seed 004): events with a capacity, registrations that never overbook.
 *
 * Every write is ONE conditional update of the event document, made by `mongo-atomics`:
 * "the user is not registered yet and a seat is left" is part of the update's filter, so
 * MongoDB checks it and applies `$inc` + `$addToSet` as one atomic step on the document. Of
 * 50 concurrent registrations for the last seat exactly one gets 201; a double click registers
 * once; two concurrent cancellations release one seat. naive.ts shows what goes wrong without.
 *
 * The member array and the counter are written ONLY through `addToSetWithCapacity` and
 * `removeFromSetWithCapacity`: they keep `tickets_sold` equal to the number of ids, and a
 * hand-written `$push` or `$inc` elsewhere would make the two drift for good.
 */
import type { Express, Response } from 'express';
import { Router } from 'express';
import {
  addToSetWithCapacity,
  isRetryBudgetExhaustedError,
  removeFromSetWithCapacity,
} from 'mongo-atomics';
import type { Db } from 'mongodb';
import { HttpError } from '../shared/http.js';
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

/** Seconds a client is asked to wait after a 503 busy. */
const RETRY_AFTER_SECONDS = 1;

/**
 * Runs one primitive call. Both primitives throw `RetryBudgetExhaustedError` (and write
 * nothing) when the event's registrations change faster than they can tell "full" or "not
 * registered" from "a seat just freed up": ten lost tries in a row under heavy churn. That is
 * a busy signal, not a bug: answer 503 with Retry-After, and let any other error become a 500.
 */
async function orBusy<T>(res: Response, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (!isRetryBudgetExhaustedError(error)) throw error;
    res.set('Retry-After', String(RETRY_AFTER_SECONDS));
    throw new HttpError(503, {
      error: 'busy',
      message: 'the event is changing too fast, try again',
      retryAfterSeconds: RETRY_AFTER_SECONDS,
    });
  }
}

/** The real app: reads from events.ts, writes guarded by mongo-atomics. */
export function createApp(db: Db): Express {
  const events = eventsOf(db);
  const writes = Router();

  // Register: 201 | 409 full | 409 alreadyRegistered | 404 eventNotFound.
  // One round trip when the user gets a seat; when not, the primitive reads the event once to
  // say why (already registered wins over full), so no read of ours is needed before or after.
  writes.post('/events/:eventId/registrations', async (req, res) => {
    const { eventId } = parseEventParams(req);
    const { userId } = parseRegistrationBody(req);
    const result = await orBusy(res, () =>
      addToSetWithCapacity(events, {
        filter: { _id: eventId },
        array: 'registration_ids',
        member: userId,
        counter: 'tickets_sold',
        // The event's own field, read by the server in the same atomic step: raising the
        // capacity later needs no change here, and lowering it evicts nobody.
        capacity: 'capacity',
      }),
    );
    switch (result.outcome) {
      case 'added':
        res
          .status(201)
          .location(`/events/${eventId.toHexString()}/registrations/${userId}`)
          .json({ eventId: eventId.toHexString(), userId, event: summary(result.document) });
        return;
      case 'alreadyMember':
        throw alreadyRegistered(eventId, userId);
      case 'full':
        // The document as read after the failed update: informational, a seat may free up
        // a moment later (the client may retry; nothing was written).
        throw full(result.document);
      case 'notFound':
        throw eventNotFound(eventId);
    }
  });

  // Cancel: 200 with the seat released | 404 notRegistered | 404 eventNotFound.
  // The `$pull` and the `$inc: -1` happen only if the user is in the array, atomically, so two
  // concurrent cancellations (a double click) release one seat, not two.
  writes.delete('/events/:eventId/registrations/:userId', async (req, res) => {
    const { eventId, userId } = parseRegistrationParams(req);
    const result = await orBusy(res, () =>
      removeFromSetWithCapacity(events, {
        filter: { _id: eventId },
        array: 'registration_ids',
        member: userId,
        counter: 'tickets_sold',
      }),
    );
    switch (result.outcome) {
      case 'removed':
        res.json({ eventId: eventId.toHexString(), userId, event: summary(result.document) });
        return;
      case 'notMember':
        throw notRegistered(eventId, userId);
      case 'notFound':
        throw eventNotFound(eventId);
    }
  });

  return assemble(db, writes);
}
