/**
 * What the real app (app.ts) and the naive one (naive.ts) share: the event document, the
 * request schemas, the JSON shapes of the responses and the read-only routes. Only the two
 * writes (register, cancel) differ between the apps, so a test that runs both under the same
 * load compares exactly the code that races.
 */
import express, { type Express, type Request, Router } from 'express';
import type { Collection, Db, ObjectId } from 'mongodb';
import { z } from 'zod';
import { errorHandler, HttpError, notFound, objectId, parse, token } from '../shared/http.js';

/**
 * One event, with the field names of seed 004. `tickets_sold` is kept equal to the length of
 * `registration_ids` by the writes (never recounted), and never above `capacity`.
 */
export interface EventDoc {
  _id: ObjectId;
  name: string;
  starts_at: Date;
  capacity: number;
  tickets_sold: number;
  registration_ids: string[];
  /** Seat holds of the hold-then-pay flow, written only by mongo-atomics' seat-hold calls. */
  _holds?: unknown[];
}

export const EVENTS = 'events';

export const eventsOf = (db: Db): Collection<EventDoc> => db.collection<EventDoc>(EVENTS);

/**
 * The event as clients see it. The member array is left out: it can hold thousands of ids and
 * one user has no business reading the others' (GET .../registrations/:userId answers for one).
 */
export interface EventSummary {
  readonly id: string;
  readonly name: string;
  readonly startsAt: string;
  readonly capacity: number;
  readonly sold: number;
  readonly seatsLeft: number;
}

export function summary(event: Omit<EventDoc, 'registration_ids'>): EventSummary {
  return {
    id: event._id.toHexString(),
    name: event.name,
    startsAt: event.starts_at.toISOString(),
    capacity: event.capacity,
    sold: event.tickets_sold,
    seatsLeft: Math.max(0, event.capacity - event.tickets_sold),
  };
}

/** The projection every read uses: never ship the member array over the wire for a summary. */
export const WITHOUT_MEMBERS = { projection: { registration_ids: 0, _holds: 0 } } as const;

const eventParams = z.strictObject({ eventId: objectId });
const registrationParams = z.strictObject({ eventId: objectId, userId: token });
/** Strict: an unknown key (a typo such as `userID`, or `$where`) is a 400, not silently ignored. */
const registrationBody = z.strictObject({ userId: token });

const holdParams = z.strictObject({ eventId: objectId, holdId: token });
export const parseHoldParams = (req: Request) => parse(holdParams, req.params, 'params');

export const parseEventParams = (req: Request) => parse(eventParams, req.params, 'params');
export const parseRegistrationParams = (req: Request) =>
  parse(registrationParams, req.params, 'params');
export const parseRegistrationBody = (req: Request) => parse(registrationBody, req.body, 'body');

export const eventNotFound = (eventId: ObjectId) =>
  new HttpError(404, { error: 'eventNotFound', eventId: eventId.toHexString() });

export const notRegistered = (eventId: ObjectId, userId: string) =>
  new HttpError(404, { error: 'notRegistered', eventId: eventId.toHexString(), userId });

export const alreadyRegistered = (eventId: ObjectId, userId: string) =>
  new HttpError(409, { error: 'alreadyRegistered', eventId: eventId.toHexString(), userId });

/** 409 full, with what the caller needs to decide (wait for a cancellation, pick another event). */
export const full = (event: Omit<EventDoc, 'registration_ids'>) =>
  new HttpError(409, {
    error: 'full',
    eventId: event._id.toHexString(),
    capacity: event.capacity,
    sold: event.tickets_sold,
    seatsLeft: 0,
  });

/** The most events GET /events lists, soonest first. */
export const LIST_LIMIT = 100;

/**
 * The read-only routes, the same in both apps: reads do not race with anything they could
 * corrupt (at worst they show a count that is already stale when it arrives).
 */
export function readRoutes(db: Db): Router {
  const events = eventsOf(db);
  const router = Router();

  // Soonest first; served by the `starts_at` index (setup.ts).
  router.get('/events', async (_req, res) => {
    const list = await events
      .find({}, WITHOUT_MEMBERS)
      .sort({ starts_at: 1, _id: 1 })
      .limit(LIST_LIMIT)
      .toArray();
    res.json({ events: list.map(summary) });
  });

  router.get('/events/:eventId', async (req, res) => {
    const { eventId } = parseEventParams(req);
    const event = await events.findOne({ _id: eventId }, WITHOUT_MEMBERS);
    if (event === null) throw eventNotFound(eventId);
    res.json(summary(event));
  });

  // Is this user registered? One indexed query (the multikey index on registration_ids) that
  // never loads the member array; a second read only when the answer is no, to tell an
  // unknown event from a user who is not registered.
  router.get('/events/:eventId/registrations/:userId', async (req, res) => {
    const { eventId, userId } = parseRegistrationParams(req);
    const event = await events.findOne({ _id: eventId, registration_ids: userId }, WITHOUT_MEMBERS);
    if (event !== null) {
      res.json({ eventId: eventId.toHexString(), userId, registered: true });
      return;
    }
    const exists = await events.findOne({ _id: eventId }, { projection: { _id: 1 } });
    throw exists === null ? eventNotFound(eventId) : notRegistered(eventId, userId);
  });

  return router;
}

/**
 * The app around the write routes: JSON bodies (100 kB at most, express's default), the shared
 * reads, `writes`, then JSON 404s for unknown routes and the JSON error handler.
 */
export function assemble(db: Db, writes: Router): Express {
  const app = express();
  app.use(express.json());
  app.use(readRoutes(db));
  app.use(writes);
  app.use(notFound);
  app.use(errorHandler);
  return app;
}
