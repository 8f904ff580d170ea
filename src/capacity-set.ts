/**
 * addToSetWithCapacity and removeFromSetWithCapacity: sign up for something with limited
 * places (tickets, seats, team slots) at most once, never past the capacity.
 *
 * The race they close (seed 004, ticketing): "read the event, check `tickets_sold < capacity`
 * and that the user is not registered, then `$inc` + `$push`" lets every request that read
 * before the first write pass the check: 50 concurrent registrations for the last place all
 * succeed, and a double click registers the same user twice. Here the membership check, the
 * capacity check, the counter increment and the push are one conditional update of one
 * document: of N concurrent registrations exactly as many succeed as there are places, and the
 * counter always equals the number of members.
 *
 * Both functions assume they alone maintain the array and the counter (see the contract
 * headers): the counter is kept in step with the array, never recomputed from it.
 */
import type { ClientSession, Collection, Document, Filter, WithId } from 'mongodb';
import { GiveUpReason, InvalidArgumentError, RetryBudgetExhaustedError } from './errors.js';
import {
  conditionalCommand,
  holdsExpression,
  readWithVerdicts,
  selectsOneDocument,
  updateWithVerdicts,
  type Write,
} from './failure-read.js';
import {
  type AlreadyApplied,
  assertNoOverlap,
  guarded,
  type IfOpId,
  OP_ID_OPTIONS,
  type OpGuard,
  type OpIdOptions,
  opGuard,
  opQuestion,
  opRecordExpression,
} from './op-log.js';
import type { ArrayPath, CheckedPath, NumericPath } from './paths.js';
import { describe, notANumber, type ScalarValue, type Validator, validator } from './validate.js';
import { numericValue, valueAlong } from './values.js';

/**
 * Options of removeFromSetWithCapacity (and, with `capacity`, of addToSetWithCapacity).
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TArray - the path in `array`, inferred and checked against the schema's array paths.
 * @typeParam TCounter - the path in `counter`, inferred and checked against the schema's
 *   numeric paths.
 */
export interface RemoveFromSetWithCapacityOptions<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = string | undefined,
> extends OpIdOptions<TOpId> {
  /** Selects the one document holding the set, e.g. `{ _id: eventId }`. */
  readonly filter: Filter<TSchema>;
  /**
   * Dotted path of the member array, e.g. `'registration_ids'` or `'booking.attendees'`. A
   * missing array counts as empty. Segments name fields of embedded documents (the path must
   * not run through an array). With a typed collection, only dotted paths of the schema that
   * hold an array compile (see ArrayPath); with `Collection<Document>`, any string. A value
   * typed `string` is checked at run time only.
   */
  readonly array: CheckedPath<TArray, ArrayPath<TSchema>>;
  /**
   * The member: a string (at most 1024 characters), finite number, boolean, Date, ObjectId,
   * Decimal128, Long or UUID/Binary. Objects and arrays are rejected, so a request body cannot
   * smuggle in query operators. Compared by value (an ObjectId equals another with the same hex string).
   */
  readonly member: ScalarValue;
  /**
   * Dotted path of the counter kept in step with the array, e.g. `'tickets_sold'`. A missing
   * counter counts as 0. Must not overlap `array`. With a typed collection, only dotted paths
   * of the schema that hold a number compile (see NumericPath); with `Collection<Document>`,
   * any string. A value typed `string` is checked at run time only.
   */
  readonly counter: CheckedPath<TCounter, NumericPath<TSchema>>;
  /**
   * Run inside the caller's session or transaction (a session of the collection's own
   * MongoClient). `undefined` runs without one.
   */
  readonly session?: ClientSession | undefined;
}

/**
 * Options of addToSetWithCapacity.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TArray - the path in `array` (see RemoveFromSetWithCapacityOptions).
 * @typeParam TCounter - the path in `counter` (see RemoveFromSetWithCapacityOptions).
 * @typeParam TCapacity - the path in `capacity`, when it is one: inferred and checked against
 *   the schema's numeric paths.
 */
export interface AddToSetWithCapacityOptions<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
  TCapacity extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = string | undefined,
> extends RemoveFromSetWithCapacityOptions<TSchema, TArray, TCounter, TOpId> {
  /**
   * How many members fit: a whole number ≥ 1, or the dotted path of a field of the document
   * that holds it (e.g. `'capacity'`), read by the server in the same atomic step. A capacity
   * field that is missing or not a number (or NaN) lets nobody in; the call then throws
   * InvalidArgumentError on `capacity` rather than answer `full`. With a typed collection, a
   * path must be a dotted path of the schema that holds a number (see NumericPath); with
   * `Collection<Document>`, any string. A value typed `string` is checked at run time only.
   */
  readonly capacity: number | CheckedPath<TCapacity, NumericPath<TSchema>>;
}

/**
 * What addToSetWithCapacity did, told by `outcome` (with `opId`, also `alreadyApplied`: see
 * AlreadyApplied). Fields a branch lacks are typed `?: never`, so destructuring narrows.
 */
export type AddToSetWithCapacityResult<TSchema extends Document = Document> =
  | {
      /** This call added the member and counted it. */
      readonly outcome: 'added';
      /** The document as it is after the update. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** The member was already in the array (even if the set is also full); nothing changed. */
      readonly outcome: 'alreadyMember';
      /** The document as read. */
      readonly document: WithId<TSchema>;
    }
  | {
      /**
       * The counter has reached the capacity; nothing changed. (A capacity or counter field
       * that is missing or not a number is no full set: InvalidArgumentError on that option.)
       */
      readonly outcome: 'full';
      /** The document as read: informational, a place may free up right after. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** No document matches `filter`; nothing changed. */
      readonly outcome: 'notFound';
      /** Absent: there is no document. */
      readonly document?: never;
    };

/**
 * What removeFromSetWithCapacity did, told by `outcome` (with `opId`, also `alreadyApplied`:
 * see AlreadyApplied). Fields a branch lacks are typed `?: never`, so destructuring narrows.
 */
export type RemoveFromSetWithCapacityResult<TSchema extends Document = Document> =
  | {
      /** This call removed the member and released its place (the counter went down by 1). */
      readonly outcome: 'removed';
      /** The document as it is after the update. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** The member was not in the array; nothing changed. */
      readonly outcome: 'notMember';
      /** The document as read. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** No document matches `filter`; nothing changed. */
      readonly outcome: 'notFound';
      /** Absent: there is no document. */
      readonly document?: never;
    };

const REMOVE_OPTIONS = ['filter', 'array', 'member', 'counter', 'session', ...OP_ID_OPTIONS];
const ADD_OPTIONS = [
  'filter',
  'array',
  'member',
  'counter',
  'capacity',
  'session',
  ...OP_ID_OPTIONS,
];

/** Do the paths `a` and `b` name the same field, or one a field inside the other? */
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

interface Membership {
  readonly filter: Document;
  readonly array: string;
  readonly member: unknown;
  readonly counter: string;
  readonly session: ClientSession | undefined;
  readonly op: OpGuard | undefined;
}

/** Validation shared by both functions, in the order the options are documented. */
function validateMembership<TSchema extends Document>(
  v: Validator,
  collection: Collection<TSchema>,
  options: RemoveFromSetWithCapacityOptions<TSchema>,
  known: readonly string[],
): Membership {
  v.options(options);
  v.knownKeys(options, known);
  const filter = v.filter(options.filter);
  const array = v.path(options.array, 'array');
  const member = v.scalar(options.member, 'member');
  const counter = v.path(options.counter, 'counter');
  if (overlaps(counter, array)) {
    v.fail('counter', `overlaps the array "${array}": the counter must be a field of its own`);
  }
  const session = v.session(options.session, collection);
  const op = opGuard(v, options);
  assertNoOverlap(v, op, array, 'array');
  assertNoOverlap(v, op, counter, 'counter');
  return { filter, array, member, counter, session, op };
}

/**
 * The pipeline guard's condition on the data's shape: the array is an array (or, for an add,
 * missing) and the counter a number or missing. Exactly where `$addToSet`/`$pull` and `$inc`
 * would refuse the document (a null counter, a string in the array's place, …), the pipeline
 * would not (`$ifNull` reads null as missing, `$add` adds to a Date): those documents fail
 * the guard, and the caller falls back to the operator update, which the server refuses as
 * it always has.
 */
function shapeExpression(m: Membership): Document {
  return {
    $and: [
      { $in: [{ $type: `$${m.array}` }, ['array', 'missing']] },
      { $in: [{ $type: `$${m.counter}` }, ['int', 'long', 'double', 'decimal', 'missing']] },
    ],
  };
}

/**
 * What the operator update writes, as pipeline values: the array's new value, the counter
 * plus `step` (`$add` computes what `$inc` would: int + int stays an int, overflowing to a
 * long; a missing counter starts from int 0), and the op id log. updateWithVerdicts creates
 * missing fields in the order the update operators do.
 */
function membershipWrites(m: Membership, array: Document, step: number): Write[] {
  return [
    [m.array, array],
    [m.counter, { $add: [{ $ifNull: [`$${m.counter}`, 0] }, step] }],
    ...(m.op === undefined ? [] : [[m.op.field, opRecordExpression(m.op)] as const]),
  ];
}

/**
 * The `$expr` that holds while there is room: `(counter ?? 0) < capacity`, the capacity being
 * a literal or a field of the document, read in the same atomic step as the update.
 */
function roomExpression(v: Validator, capacity: unknown, m: Membership): Document {
  const count = { $ifNull: [`$${m.counter}`, 0] };
  if (typeof capacity !== 'string') {
    return { $lt: [count, v.integer(capacity, 'capacity', 1)] };
  }
  const field = v.path(capacity, 'capacity');
  if (overlaps(field, m.counter) || overlaps(field, m.array)) {
    v.fail('capacity', 'must name a field of its own, not the counter or the array');
  }
  assertNoOverlap(v, m.op, field, 'capacity');
  // A capacity field holding a string or an array would compare above every number (BSON
  // order) and let everyone in. Only a number (of any BSON numeric type) counts.
  return {
    $and: [
      { $in: [{ $type: `$${field}` }, ['int', 'long', 'double', 'decimal']] },
      { $lt: [count, `$${field}`] },
    ],
  };
}

/**
 * Adds `member` to the array at `array` and increments `counter`, only if the member is not
 * there yet and the counter is below `capacity`.
 *
 * - **Guard**: `filter` AND `array ≠ member` (no element equals it; a missing array matches)
 *   AND `$expr: (counter ?? 0) < capacity`, where capacity is `{ $literal: n }` or the
 *   document's own `'$field'` (which must then hold a number: its `$type` is numeric). A
 *   guard that can never hold (a capacity field missing or not a number, a counter holding a
 *   string or another non-number) is reported by the failure read: InvalidArgumentError on
 *   `capacity` or `counter`, never `full`.
 * - **Update**: `$inc: { counter: 1 }`, `$addToSet: { array: member }`. When `filter` has an
 *   `_id` equality (it selects at most one document), the same write as a pipeline instead:
 *   the filter is `filter` alone and the update `$replaceWith: { $cond: [guard, <the document
 *   with the array + [member] (`$concatArrays`), the counter + 1 (`$add`) and the op id
 *   recorded>, '$$ROOT'] }`, with `returnDocument: 'before'` and a projection evaluating the
 *   guard, the written document and the verdicts on the same before-image (see
 *   updateWithVerdicts in failure-read.ts). It leaves what the operator update leaves (same
 *   values, BSON types and field order, pinned by tests/capacity-set.one-command.test.ts). A
 *   refused call replaces the document by itself, which MongoDB treats as a no-op: nothing is
 *   written (no oplog entry, no write conflict in a caller's transaction). That guard also
 *   requires the array to be an array (or missing) and the counter a number (or missing):
 *   data the operators would refuse (a null counter, a string where the array should be) is
 *   left to the operator update, which the server refuses with its own error, as before.
 * - **Atomic**: guard and update are one `findOneAndUpdate` on one document. However many
 *   callers race, the counter never exceeds the capacity, a member is never added twice, and
 *   the counter and the array length move together.
 * - **Round trips**: success: 1 (`findAndModify`). Failure (`notFound`, `alreadyApplied`,
 *   `alreadyMember`, `full`, the InvalidArgumentErrors below): 1 with an `_id` equality in
 *   `filter`, the outcome being the one that command saw; else 2, the second a `find` that
 *   tells apart `notFound`, then, in this order, `alreadyApplied` (the op id is in the log),
 *   `alreadyMember` (wins over `full`) and `full`. `full` is returned only when what was read
 *   shows no place. It is informational: a place may free up right after it. When the driver
 *   retried a `findAndModify` that the server had applied and the answer is the stored image,
 *   one `aggregate` more evaluates the projection on it (`_id` filters only). Data the pipeline
 *   guard leaves to the operator update (see Update) takes that path's commands after the first.
 * - **Contention** (filters without an `_id` equality only): a failure read that shows a place
 *   means the set changed between the update and the read (a place was taken, then freed): the
 *   add is tried again (another `findAndModify` + `find`), at most 10 tries in all. When all 10
 *   lose that way, the call throws RetryBudgetExhaustedError (reason `maxAttempts`, `attempts`
 *   10, `cause` an Error describing the last try) after 20 round trips, nothing written: the set
 *   is changing faster than the add can be checked, and no outcome would be true (the update saw
 *   no place, the read saw one). Call again later. With an `_id` equality the verdicts come
 *   from the update's own before-image, so they cannot contradict it: no retry.
 * - **`opId`**: also guarded by "this id not yet applied", and the id is `$push`ed onto the op
 *   id log in the same update (no extra round trip); a repeat resolves `alreadyApplied`
 *   (checked first on the failure read) and changes nothing. An attempt that resolved `full`
 *   or `alreadyMember` records nothing, so its id may still apply later. See OpIdOptions.
 * - **Assumes** the array and the counter are changed only by these two functions: the
 *   counter is kept in step, never recounted. An element that was in the array twice, or a
 *   counter edited by hand, makes them drift for good.
 * - **Lowering the capacity** below the counter evicts nobody: adds resolve `full` until
 *   removals bring the counter below the new capacity.
 * - Works on a standalone server; joins the caller's transaction through `session`.
 *
 * @example
 * ```ts
 * interface Event { _id: ObjectId; capacity: number; tickets_sold: number; registration_ids: string[] }
 * const events = db.collection<Event>('events');
 *
 * const result = await addToSetWithCapacity(events, {
 *   filter: { _id: eventId },
 *   array: 'registration_ids',
 *   member: userId,
 *   counter: 'tickets_sold',
 *   capacity: 'capacity',
 * });
 * if (result.outcome === 'full') return res.status(409).send('sold out');
 * ```
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent; and, from the
 *   failure path's own commands (no extra round trip, nothing added), on `capacity` when the matched document
 *   lacks the capacity field or holds no number there, on `counter` when it holds a
 *   non-number other than null.
 * @throws RetryBudgetExhaustedError (reason `maxAttempts`) when 10 tries in a row saw no place
 *   while the read after each showed one (see Contention); nothing was written.
 * @throws MongoAtomicsError when the server did not evaluate the projection (before 4.4), or,
 *   on a retried command, when the outcome could not be read from the image (see
 *   retry-image.ts): the add was applied, so do not repeat it blindly.
 */
export function addToSetWithCapacity<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
  TCapacity extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = undefined,
>(
  collection: Collection<TSchema>,
  options: AddToSetWithCapacityOptions<TSchema, TArray, TCounter, TCapacity, TOpId>,
): Promise<AddToSetWithCapacityResult<TSchema> | IfOpId<TOpId, AlreadyApplied<TSchema>>>;
export async function addToSetWithCapacity<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: AddToSetWithCapacityOptions<TSchema>,
): Promise<AddToSetWithCapacityResult<TSchema> | AlreadyApplied<TSchema>> {
  const v = validator('addToSetWithCapacity');
  v.collection(collection);
  const m = validateMembership(v, collection, options, ADD_OPTIONS);
  const room = roomExpression(v, options.capacity, m);
  const sessionOption = m.session === undefined ? {} : { session: m.session };

  if (selectsOneDocument(m.filter)) {
    // One command on every path the verdicts explain: the guard moves into the update, which
    // writes nothing when it fails, and the projection says why (see updateWithVerdicts).
    const seen = opQuestion(m.op);
    const member = holdsExpression(m.array, m.member);
    const outcome = await updateWithVerdicts(
      'addToSetWithCapacity',
      collection,
      m.filter,
      conditionalCommand({
        // Cheapest test first (`$and`/`$or` stop at the first answer): on a full set, room
        // decides without scanning the array for the member.
        guard: {
          $and: [
            room,
            ...(seen === undefined ? [] : [{ $not: [seen] }]),
            { $not: [member] },
            shapeExpression(m),
          ],
        },
        writes: membershipWrites(
          m,
          {
            $concatArrays: [{ $ifNull: [`$${m.array}`, []] }, [{ $literal: m.member }]],
          },
          1,
        ),
        questions: {
          applied: seen,
          member,
          room,
          explained: { $or: [{ $not: [room] }, ...(seen === undefined ? [] : [seen]), member] },
        },
        facts: {},
        documentWhen: 'explained',
      }),
      m.session,
    );
    if (outcome === null) return { outcome: 'notFound' };
    if (outcome.applied) return { outcome: 'added', document: outcome.document };
    const { document, verdicts } = outcome;
    if (document !== undefined) {
      if (verdicts.applied) return { outcome: 'alreadyApplied', document };
      if (verdicts.member) return { outcome: 'alreadyMember', document };
      assertCountable(m, options.capacity, document);
      return { outcome: 'full', document };
    }
    // Not explained by a verdict: the guard failed on the shape alone (a null counter, a
    // field in the array's place that is no array). The operator update below meets that data
    // as it always has (the server refuses it with its own error).
  }

  const statement = guarded(
    m.op,
    { $and: [m.filter, { [m.array]: { $ne: m.member } }, { $expr: room }] },
    { $inc: { [m.counter]: 1 }, $addToSet: { [m.array]: m.member } },
  );
  const started = performance.now();
  for (let attempt = 1; ; attempt++) {
    const added = await collection.findOneAndUpdate(
      statement.filter as Filter<TSchema>,
      statement.update as Document,
      { returnDocument: 'after', ...sessionOption },
    );
    if (added !== null) return { outcome: 'added', document: added };

    // The server answers each question with the comparisons (and collation) its guard used.
    const read = await readWithVerdicts(
      'addToSetWithCapacity',
      collection,
      m.filter,
      { applied: opQuestion(m.op), member: holdsExpression(m.array, m.member), room },
      m.session,
    );
    if (read === null) return { outcome: 'notFound' };
    const { document, verdicts } = read;
    if (verdicts.applied) return { outcome: 'alreadyApplied', document };
    if (verdicts.member) return { outcome: 'alreadyMember', document };
    // `full` only when the read shows it. A read that shows a place the update did not see
    // means a member left in between (e.g. this one's earlier registration was cancelled):
    // try again, a bounded number of times. Past that, answering `full` would contradict the
    // read and `added` did not happen: say that the set is too contended instead.
    if (!verdicts.room) {
      assertCountable(m, options.capacity, document);
      return { outcome: 'full', document };
    }
    if (attempt >= MAX_ATTEMPTS) {
      throw contended(
        'addToSetWithCapacity',
        attempt,
        started,
        'found no place, yet every read afterwards showed one',
      );
    }
  }
}

/**
 * Before answering `full`: a guard that can never hold is no full set. A capacity field that is
 * missing or no number (NaN included) lets nobody in, and so does a counter holding a string,
 * an object, …: both sort above every number, so `counter < capacity` is false. That would
 * read as "sold out" for a misspelt field name or bad data; it is reported instead, naming the
 * option. (A missing or null counter counts as 0, as documented.)
 */
function assertCountable(m: Membership, capacity: unknown, document: Document): void {
  const refuse = (option: string, path: string, problem: string, remedy: string): never => {
    throw new InvalidArgumentError(
      'addToSetWithCapacity',
      option,
      `names "${path}", but the matched document ${problem}: no place can be counted, nothing was added. ${remedy}`,
    );
  };
  const count = valueAlong(document, m.counter);
  if (count !== undefined && count !== null && numericValue(count) === undefined) {
    refuse(
      'counter',
      m.counter,
      `holds ${describe(count)}`,
      'Check the field name, or store a number there (a missing counter counts as 0)',
    );
  }
  if (typeof capacity !== 'string') return;
  const problem = notANumber(valueAlong(document, capacity));
  if (problem !== undefined) {
    refuse(
      'capacity',
      capacity,
      problem,
      'Check the field name, or store the capacity as a number (int, long, double or Decimal128), or pass it as a number',
    );
  }
}

/**
 * Tries of an add whose failure read keeps showing room, or of a removal whose failure read
 * keeps showing the member: answering `full` or `notMember` would contradict that read. Each
 * lost try needs another caller's write to land between this call's update and its read; 3
 * was seen to run out in a 30-client register/cancel storm on a 5-place event (the capacity
 * storm test), 10 makes that a remote chance while still bounding the call.
 */
const MAX_ATTEMPTS = 10;

/** The set changed between every update and its read, `attempts` times: nothing was written. */
function contended(
  primitive: string,
  attempts: number,
  started: number,
  what: string,
): RetryBudgetExhaustedError {
  return new RetryBudgetExhaustedError(
    `${primitive}: ${attempts} attempts ${what}: the set is changing faster than the call can be checked; nothing was written. Call again later`,
    {
      reason: GiveUpReason.MaxAttempts,
      attempts,
      elapsedMs: Math.round(performance.now() - started),
      cause: new Error(
        `attempt ${attempts}: the guarded update matched nothing, and the read after it contradicted that`,
      ),
    },
  );
}

/**
 * Removes `member` from the array at `array` and decrements `counter`, releasing its place,
 * only if the member is there.
 *
 * - **Guard**: `filter` AND `array = member` (an element equals it).
 * - **Update**: `$pull: { array: member }`, `$inc: { counter: -1 }`. With an `_id` equality
 *   in `filter`, the same write as a conditional pipeline, as for addToSetWithCapacity: the
 *   array `$filter`ed of every element equal to the member (under the collection's collation,
 *   as `$pull` compares), the counter + (−1) (`$add`); a refused call writes nothing.
 * - **Atomic**: one `findOneAndUpdate` on one document: of N concurrent removals of one
 *   member exactly one releases its place, so the counter never drops twice for it.
 * - **Round trips**: success: 1 (`findAndModify`). Failure (`notFound`, `alreadyApplied`,
 *   `notMember`): 1 with an `_id` equality in `filter`; else 2, the second a `find` that tells
 *   them apart. On that path `notMember` is returned only when the read shows the member
 *   absent; if it shows the member (added between the update and the read), the removal is
 *   tried again, at most 10 times in all, then RetryBudgetExhaustedError (`maxAttempts`),
 *   nothing written.
 * - **`opId`**: as for addToSetWithCapacity. A retried cancellation carrying its `opId`
 *   resolves `alreadyApplied` instead of cancelling a registration made after it.
 * - **Assumes**, like addToSetWithCapacity, that only these functions change the array and the
 *   counter: `$pull` removes every equal element but decrements by one.
 * - Works on a standalone server; joins the caller's transaction through `session`.
 *
 * @example
 * ```ts
 * interface Event { _id: ObjectId; capacity: number; tickets_sold: number; registration_ids: string[] }
 * const events = db.collection<Event>('events');
 *
 * const result = await removeFromSetWithCapacity(events, {
 *   filter: { _id: eventId },
 *   array: 'registration_ids',
 *   member: userId,
 *   counter: 'tickets_sold',
 * });
 * if (result.outcome === 'notMember') return res.status(404).send('not registered');
 * ```
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent.
 * @throws RetryBudgetExhaustedError (reason `maxAttempts`) when 10 tries in a row found no member
 *   while the read after each showed it; nothing was removed by this call.
 */
export function removeFromSetWithCapacity<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = undefined,
>(
  collection: Collection<TSchema>,
  options: RemoveFromSetWithCapacityOptions<TSchema, TArray, TCounter, TOpId>,
): Promise<RemoveFromSetWithCapacityResult<TSchema> | IfOpId<TOpId, AlreadyApplied<TSchema>>>;
export async function removeFromSetWithCapacity<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: RemoveFromSetWithCapacityOptions<TSchema>,
): Promise<RemoveFromSetWithCapacityResult<TSchema> | AlreadyApplied<TSchema>> {
  const v = validator('removeFromSetWithCapacity');
  v.collection(collection);
  const m = validateMembership(v, collection, options, REMOVE_OPTIONS);
  const sessionOption = m.session === undefined ? {} : { session: m.session };

  if (selectsOneDocument(m.filter)) {
    // One command on every path the verdicts explain (see addToSetWithCapacity).
    const seen = opQuestion(m.op);
    const member = holdsExpression(m.array, m.member);
    const outcome = await updateWithVerdicts(
      'removeFromSetWithCapacity',
      collection,
      m.filter,
      conditionalCommand({
        guard: {
          $and: [member, shapeExpression(m), ...(seen === undefined ? [] : [{ $not: [seen] }])],
        },
        writes: membershipWrites(
          m,
          // `$pull` removes every element equal to the member (under the collation): so does
          // this `$filter`, keeping the others in order.
          { $filter: { input: `$${m.array}`, cond: { $ne: ['$$this', { $literal: m.member }] } } },
          -1,
        ),
        questions: {
          applied: seen,
          member,
          explained: { $or: [...(seen === undefined ? [] : [seen]), { $not: [member] }] },
        },
        facts: {},
        documentWhen: 'explained',
      }),
      m.session,
    );
    if (outcome === null) return { outcome: 'notFound' };
    if (outcome.applied) return { outcome: 'removed', document: outcome.document };
    const { document, verdicts } = outcome;
    if (document !== undefined) {
      if (verdicts.applied) return { outcome: 'alreadyApplied', document };
      return { outcome: 'notMember', document };
    }
    // Not explained (the member is there, but the array or the counter has a shape the
    // operators refuse): the operator update below meets it as it always has.
  }

  const statement = guarded(
    m.op,
    { $and: [m.filter, { [m.array]: m.member }] },
    { $pull: { [m.array]: m.member }, $inc: { [m.counter]: -1 } },
  );
  const started = performance.now();
  for (let attempt = 1; ; attempt++) {
    const removed = await collection.findOneAndUpdate(
      statement.filter as Filter<TSchema>,
      statement.update as Document,
      { returnDocument: 'after', ...sessionOption },
    );
    if (removed !== null) return { outcome: 'removed', document: removed };

    const read = await readWithVerdicts(
      'removeFromSetWithCapacity',
      collection,
      m.filter,
      { applied: opQuestion(m.op), member: holdsExpression(m.array, m.member) },
      m.session,
    );
    if (read === null) return { outcome: 'notFound' };
    const { document, verdicts } = read;
    if (verdicts.applied) return { outcome: 'alreadyApplied', document };
    // `notMember` only when the read shows it. A read that shows the member the update did
    // not find means it was added in between (a registration racing this cancellation): try
    // again, a bounded number of times, as the add does for `full`.
    if (!verdicts.member) return { outcome: 'notMember', document };
    if (attempt >= MAX_ATTEMPTS) {
      throw contended(
        'removeFromSetWithCapacity',
        attempt,
        started,
        'found no member, yet every read afterwards showed it',
      );
    }
  }
}
