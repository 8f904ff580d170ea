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

import { randomUUID } from 'node:crypto';
import type { Express, Response } from 'express';
import { Router } from 'express';
import {
  addToSetWithCapacity,
  confirmPlace,
  holdPlace,
  isRetryBudgetExhaustedError,
  releasePlace,
  removeFromSetWithCapacity,
  type SettlePlaceResult,
} from 'mongo-atomics';
import type { Db } from 'mongodb';
import { HttpError } from '../shared/http.js';
import {
  alreadyRegistered,
  assemble,
  type EventDoc,
  eventNotFound,
  eventsOf,
  full,
  notRegistered,
  parseEventParams,
  parseHoldParams,
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

/** Options of the real app. */
export interface TicketingOptions {
  /** How long a seat hold lasts before it lapses (server time). @default 600000 (10 minutes) */
  readonly holdTtlMs?: number;
}

/** HTTP answers for a hold confirmed, released or settled before (hold-then-pay flow). */
function settledReply(eventId: string, result: SettlePlaceResult<EventDoc>) {
  switch (result.outcome) {
    case 'confirmed':
    case 'released':
    case 'alreadyConfirmed':
    case 'alreadyReleased':
      return {
        status: result.outcome.startsWith('already') ? 409 : 200,
        body: {
          eventId,
          holdId: result.hold.holdId,
          userId: result.hold.member,
          state: result.hold.state,
          event: summary(result.document),
          ...(result.outcome.startsWith('already') ? { error: result.outcome } : {}),
        },
      };
    case 'expired':
      // 410 Gone: the hold lapsed first and its seat went back on sale; nothing was registered.
      return {
        status: 410,
        body: {
          error: 'holdExpired',
          eventId,
          holdId: result.hold.holdId,
          event: summary(result.document),
        },
      };
    case 'unknownHold':
      return { status: 404, body: { error: 'holdNotFound', eventId } };
    case 'notFound':
      return { status: 404, body: { error: 'eventNotFound', eventId } };
  }
}

/** The real app: reads from events.ts, writes guarded by mongo-atomics. */
export function createApp(db: Db, options: TicketingOptions = {}): Express {
  const events = eventsOf(db);
  const writes = Router();
  const holdTtlMs = options.holdTtlMs ?? 600_000;
  const seats = { array: 'registration_ids', counter: 'tickets_sold' } as const;

  // Hold-then-pay, step 1: hold a seat while the buyer pays. 201 with the holdId and when it
  // lapses | 409 full | 409 alreadyRegistered | 409 alreadyHeld (with the user's live hold) |
  // 503 busy (too many holds at once) | 404 eventNotFound. One round trip; a hold that lapsed
  // gives its seat to this buyer inside the same update (no cron job).
  writes.post('/events/:eventId/holds', async (req, res) => {
    const { eventId } = parseEventParams(req);
    const { userId } = parseRegistrationBody(req);
    const holdId = randomUUID();
    const result = await holdPlace(events, {
      ...seats,
      filter: { _id: eventId },
      capacity: 'capacity',
      member: userId,
      holdId,
      ttlMs: holdTtlMs,
    });
    const id = eventId.toHexString();
    switch (result.outcome) {
      case 'held':
        res
          .status(201)
          .location(`/events/${id}/holds/${holdId}`)
          .json({
            eventId: id,
            userId,
            holdId,
            expiresAt: result.expiresAt.toISOString(),
            event: summary(result.document),
          });
        return;
      case 'alreadyHeld':
        throw new HttpError(409, {
          error: 'alreadyHeld',
          eventId: id,
          userId,
          holdId: result.hold.holdId,
          expiresAt: result.hold.expiresAt.toISOString(),
        });
      case 'alreadySettled':
        // A fresh random holdId never names a settled hold.
        throw new Error(`hold id ${holdId} reused`);
      case 'alreadyMember':
        throw alreadyRegistered(eventId, userId);
      case 'full':
        throw full(result.document);
      case 'tooManyHolds':
        res.set('Retry-After', String(RETRY_AFTER_SECONDS));
        throw new HttpError(503, {
          error: 'busy',
          message: 'too many seats on hold, try again',
          retryAfterSeconds: RETRY_AFTER_SECONDS,
        });
      case 'notFound':
        throw eventNotFound(eventId);
    }
  });

  // Step 2a, on payment: the held seat becomes the user's registration (counted once).
  // 200 confirmed | 410 holdExpired (refund: the seat went back on sale) | 409 alreadyConfirmed
  // or alreadyReleased | 404 holdNotFound | 404 eventNotFound. A payment callback delivered
  // twice gets 409 alreadyConfirmed the second time, and registers once.
  writes.post('/events/:eventId/holds/:holdId/confirm', async (req, res) => {
    const { eventId, holdId } = parseHoldParams(req);
    const result = await confirmPlace(events, { ...seats, filter: { _id: eventId }, holdId });
    const reply = settledReply(eventId.toHexString(), result);
    res.status(reply.status).json(reply.body);
  });

  // Step 2b, on cancel: the seat goes back on sale. 200 released | 410 holdExpired |
  // 409 alreadyConfirmed (cancel the registration instead) or alreadyReleased | 404.
  writes.delete('/events/:eventId/holds/:holdId', async (req, res) => {
    const { eventId, holdId } = parseHoldParams(req);
    const result = await releasePlace(events, { ...seats, filter: { _id: eventId }, holdId });
    const reply = settledReply(eventId.toHexString(), result);
    res.status(reply.status).json(reply.body);
  });

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
