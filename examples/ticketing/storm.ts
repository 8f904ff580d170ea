/**
 * The concurrent-request storms of the ticketing example, shared by its test
 * (tests/examples/ticketing.test.ts) and its demo scenario (demo.ts): how to set up the event,
 * how to send one request over HTTP, and the invariant check, which also demands that the
 * database holds exactly what the responses said.
 */
import type { RaceReport } from 'mongo-atomics/testing';
import { type Db, ObjectId } from 'mongodb';
import { eventsOf } from './events.js';

/** One storm request's reply, named for the race's tally by its `outcome`. */
export interface StormReply {
  /** `registered` (201), `cancelled` (200), else the error body's `error` (`full`, ...). */
  readonly outcome: string;
  readonly status: number;
  readonly userId: string;
}

export interface TicketStorm {
  readonly title: string;
  /** Concurrent requests. */
  readonly requests: number;
  readonly invariant: string;
  readonly capacity: number;
  /** Users registered before the storm. */
  readonly registeredBefore: readonly string[];
  /** Request `index`: who, and whether it registers or cancels. */
  request(index: number): { readonly userId: string; readonly action: 'register' | 'cancel' };
  /** The outcomes a correct service may answer in this storm. */
  readonly expectedOutcomes: readonly string[];
}

/** Seed 004's own stress test: 50 different users, one seat. */
export const lastSeatStorm: TicketStorm = {
  title: 'Ticketing: 50 registrations, 1 seat',
  requests: 50,
  invariant: 'at most 1 registration; sold = registrations = the users answered 201',
  capacity: 1,
  registeredBefore: [],
  request: (index) => ({ userId: `user-${index}`, action: 'register' }),
  expectedOutcomes: ['registered', 'full'],
};

/** A double (here: fifty-fold) click: one user, the same registration 50 times at once. */
export const doubleClickStorm: TicketStorm = {
  title: 'Ticketing: one user registers 50 times at once, 10 seats',
  requests: 50,
  invariant: 'registered at most once; sold = registrations = the users answered 201',
  capacity: 10,
  registeredBefore: [],
  request: () => ({ userId: 'clicker', action: 'register' }),
  expectedOutcomes: ['registered', 'alreadyRegistered'],
};

/** One user cancels 50 times at once: one seat may be released, not 50. */
export const doubleCancelStorm: TicketStorm = {
  title: 'Ticketing: one user cancels 50 times at once',
  requests: 50,
  invariant: 'one seat released; sold = registrations = the users not answered 200',
  capacity: 10,
  registeredBefore: ['leaver', 'stayer-1', 'stayer-2'],
  request: () => ({ userId: 'leaver', action: 'cancel' }),
  expectedOutcomes: ['cancelled', 'notRegistered'],
};

const HOLDERS = ['holder-0', 'holder-1', 'holder-2', 'holder-3', 'holder-4'];

/**
 * Churn on a full event: 50 cancellations (each of its 5 holders, 10 times) and 50
 * registrations of newcomers, all at once. Who gets the freed seats depends on timing; the
 * database must still hold exactly who the answers said. `busy` (503, nothing written) is an
 * acceptable answer when the seats change faster than a refusal can be checked.
 */
export const churnStorm: TicketStorm = {
  title: 'Ticketing: 50 cancellations and 50 registrations at once, 5 seats taken',
  requests: 100,
  invariant: 'sold = registrations = before + answered 201 − answered 200, at most 5',
  capacity: 5,
  registeredBefore: HOLDERS,
  request: (index) =>
    index % 2 === 0
      ? { userId: HOLDERS[(index / 2) % HOLDERS.length] ?? 'holder-0', action: 'cancel' }
      : { userId: `newcomer-${index}`, action: 'register' },
  expectedOutcomes: ['cancelled', 'notRegistered', 'registered', 'full', 'busy'],
};

/** A fresh event for one run of `storm`; returns its id. */
export async function setUpStormEvent(db: Db, storm: TicketStorm): Promise<ObjectId> {
  const _id = new ObjectId();
  await eventsOf(db).insertOne({
    _id,
    name: storm.title,
    starts_at: new Date(),
    capacity: storm.capacity,
    tickets_sold: storm.registeredBefore.length,
    registration_ids: [...storm.registeredBefore],
  });
  return _id;
}

/** Sends request `index` of `storm` to the service at `base` (Node's own fetch). */
export async function sendStormRequest(
  base: string,
  storm: TicketStorm,
  eventId: ObjectId,
  index: number,
): Promise<StormReply> {
  const { userId, action } = storm.request(index);
  const path = `/events/${eventId.toHexString()}/registrations`;
  const response =
    action === 'register'
      ? await fetch(`${base}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ userId }),
        })
      : await fetch(`${base}${path}/${userId}`, { method: 'DELETE' });
  const body = (await response.json()) as { error?: unknown };
  let outcome: string;
  if (response.status === 201) outcome = 'registered';
  else if (response.status === 200 && action === 'cancel') outcome = 'cancelled';
  else outcome = typeof body.error === 'string' ? body.error : `http${response.status}`;
  return { outcome, status: response.status, userId };
}

/**
 * The invariant after a storm, as a list of violations ([] when it held):
 * - `tickets_sold` = the number of registrations, 0 ≤ `tickets_sold` ≤ capacity, nobody twice;
 * - the registrations are exactly those before the storm, plus the users answered 201, minus
 *   the users answered 200 to a cancellation (what the responses said is what the DB holds);
 * - every refusal (`full`, `alreadyRegistered`, `notRegistered`) is true of the final state,
 *   where the storm holds no request that could have changed that since;
 * - every request got one of the storm's expected answers (no 500, no failed request).
 */
export async function stormViolations(
  db: Db,
  storm: TicketStorm,
  eventId: ObjectId,
  report: RaceReport<StormReply>,
): Promise<string[]> {
  const violations: string[] = [];
  const event = await eventsOf(db).findOne({ _id: eventId });
  if (event === null) return ['the event document is gone'];
  const ids = event.registration_ids;
  const sold = event.tickets_sold;
  if (sold !== ids.length) {
    violations.push(`tickets_sold is ${sold} but ${ids.length} ids are registered`);
  }
  if (sold > event.capacity) violations.push(`${sold} tickets sold for ${event.capacity} seat(s)`);
  if (sold < 0) violations.push(`tickets_sold is ${sold}`);
  const unique = new Set(ids);
  if (unique.size !== ids.length) {
    violations.push(`${ids.length - unique.size} duplicate registration(s): ${ids.join(', ')}`);
  }

  const expected = new Set(storm.registeredBefore);
  for (const reply of report.values) {
    if (reply.outcome === 'registered') expected.add(reply.userId);
    if (reply.outcome === 'cancelled') expected.delete(reply.userId);
  }
  const said = [...expected].sort();
  const held = [...ids].sort();
  if (said.join('\n') !== held.join('\n')) {
    violations.push(
      `the responses say [${said.join(', ')}] are registered, the database holds [${held.join(', ')}]`,
    );
  }
  const answered201 = report.values.filter((reply) => reply.outcome === 'registered');
  const distinct201 = new Set(answered201.map((reply) => reply.userId));
  if (answered201.length !== distinct201.size) {
    violations.push(`${answered201.length} answers 201 for ${distinct201.size} user(s)`);
  }
  const cancelled = report.values.filter((reply) => reply.outcome === 'cancelled');
  if (cancelled.length !== new Set(cancelled.map((reply) => reply.userId)).size) {
    violations.push(`${cancelled.length} cancellations answered 200 for one registration`);
  }

  // A refusal must be true of the final state whenever nothing in the storm could have
  // undone it since (seats are only freed by cancellations, a user only enters by registering
  // and leaves by cancelling). Without this, a service that refused every request would "hold".
  const actions = Array.from({ length: storm.requests }, (_, i) => storm.request(i));
  const cancels = new Set(actions.filter((a) => a.action === 'cancel').map((a) => a.userId));
  const registers = new Set(actions.filter((a) => a.action === 'register').map((a) => a.userId));
  const registered = new Set(ids);
  const lies = new Set<string>();
  for (const reply of report.values) {
    if (reply.outcome === 'full' && cancels.size === 0 && sold < event.capacity) {
      lies.add(`full answered, but ${sold} of ${event.capacity} seat(s) are sold`);
    }
    if (
      reply.outcome === 'alreadyRegistered' &&
      !cancels.has(reply.userId) &&
      !registered.has(reply.userId)
    ) {
      lies.add(`alreadyRegistered answered to ${reply.userId}, who is not registered`);
    }
    if (
      reply.outcome === 'notRegistered' &&
      !registers.has(reply.userId) &&
      registered.has(reply.userId)
    ) {
      lies.add(`notRegistered answered to ${reply.userId}, who is registered`);
    }
  }
  violations.push(...lies);

  for (const reply of report.values) {
    if (!storm.expectedOutcomes.includes(reply.outcome)) {
      violations.push(`unexpected answer ${reply.status} ${reply.outcome} for ${reply.userId}`);
    }
  }
  if (report.errors.length > 0) violations.push(`${report.errors.length} request(s) failed`);
  return violations;
}

/** The event after a storm, in a few words: "sold=1, registrations=1". */
export async function stormFinalState(db: Db, eventId: ObjectId): Promise<string> {
  const event = await eventsOf(db).findOne({ _id: eventId });
  if (event === null) return 'event gone';
  return `sold=${event.tickets_sold}, registrations=${event.registration_ids.length}`;
}
