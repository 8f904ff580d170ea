/**
 * holdPlace, confirmPlace, releasePlace and releaseExpiredPlaces: the hold variant of
 * addToSetWithCapacity. A buyer holds a place while paying; the hold becomes a member when it
 * is confirmed, or gives its place back when it is released or lapses.
 *
 * The race they close: "hold = push a hold and count it; a cron job removes expired holds
 * later". A sweeper that is late keeps lapsed holds counted (the event reads full while nobody
 * holds a place: stranded places); two sweepers that both read the same expired hold both give
 * its place back (the counter drops twice: oversold); a confirmation racing the sweeper makes
 * a member of a hold whose place was already given back (oversold again). Here every call
 * first reclaims the document's lapsed holds (by the server's clock, `$$NOW`) inside its own
 * atomic update, then applies its change under the capacity guard: a full event whose holds
 * have lapsed admits the next buyer without any sweeper, and of a confirmation, a release and
 * the expiry of one hold exactly one wins.
 *
 * The document keeps, beside the member array and the counter of addToSetWithCapacity, an
 * array of hold records at `holdsField` (default `_holds`):
 * `{ holdId, member, expiresAt, state, call }`, `state` being `held`, `confirmed`, `released`
 * or `expired`, and `call` an id of the call that last changed the record (so that a call
 * can tell, from the document it wrote, whether it was the one that settled it). The counter
 * counts members + live holds, so addToSetWithCapacity (whose guard is `counter < capacity`)
 * never sells a place that is held, and removeFromSetWithCapacity keeps working on members.
 */
import { randomBytes } from 'node:crypto';
import type { ClientSession, Collection, Document, Filter, WithId } from 'mongodb';
import { InvalidArgumentError, MongoAtomicsError } from './errors.js';
import {
  holdsExpression,
  selectsOneDocument,
  type Write,
  writtenDocument,
} from './failure-read.js';
import type { ArrayPath, CheckedPath, NumericPath } from './paths.js';
import { isUnprojectedImage, projectRetryImage } from './retry-image.js';
import {
  describe,
  isPlainObject,
  notANumber,
  type ScalarValue,
  type Validator,
  validator,
} from './validate.js';
import { numericValue, valueAlong } from './values.js';

/** Settled hold records kept per document (newest last), so late calls still learn the outcome. */
export const SETTLED_HOLDS_KEPT = 200;

/** Default and largest `maxHolds`. */
const DEFAULT_MAX_HOLDS = 1000;
const LARGEST_MAX_HOLDS = 10_000;
/** Largest `ttlMs`: one year. */
const LARGEST_TTL_MS = 365 * 24 * 60 * 60 * 1000;

/** The state of a hold record: live (`held`) or settled, and how. */
export type PlaceHoldState = 'held' | 'confirmed' | 'released' | 'expired';

/** A hold record as stored in the document's `holdsField` array. */
export interface PlaceHold {
  /** The caller's id of the hold. */
  readonly holdId: string;
  /** The member holding the place. */
  readonly member: unknown;
  /** Server time (`$$NOW` + `ttlMs` when it was taken) at which the hold lapses. */
  readonly expiresAt: Date;
  /** `held` while live; then how it was settled. */
  readonly state: PlaceHoldState;
}

/**
 * Options every seat-hold call shares.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TArray - the path in `array`, checked against the schema's array paths.
 * @typeParam TCounter - the path in `counter`, checked against the schema's numeric paths.
 */
export interface PlaceHoldBaseOptions<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
> {
  /**
   * Selects the set's document by `_id` equality, e.g. `{ _id: eventId }` (further conditions
   * may narrow it). Any other filter is refused (InvalidArgumentError on `filter`): each call
   * is one command, which needs a filter that selects at most one document.
   */
  readonly filter: Filter<TSchema>;
  /** Dotted path of the member array, as for addToSetWithCapacity. A missing array counts as empty. */
  readonly array: CheckedPath<TArray, ArrayPath<TSchema>>;
  /**
   * Dotted path of the counter: members + live holds (the counter addToSetWithCapacity keeps).
   * A missing counter counts as 0.
   */
  readonly counter: CheckedPath<TCounter, NumericPath<TSchema>>;
  /**
   * Dotted path of the array of hold records. Must not overlap `array`, `counter` or `capacity`.
   * @default '_holds'
   */
  readonly holdsField?: string | undefined;
  /** Run inside the caller's session or transaction. `undefined` runs without one. */
  readonly session?: ClientSession | undefined;
}

/** Options of holdPlace. */
export interface HoldPlaceOptions<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
  TCapacity extends string = NumericPath<TSchema>,
> extends PlaceHoldBaseOptions<TSchema, TArray, TCounter> {
  /** The member holding a place: a scalar, as for addToSetWithCapacity. */
  readonly member: ScalarValue;
  /** How many places: a whole number ≥ 1, or the dotted path of a numeric field of the document. */
  readonly capacity: number | CheckedPath<TCapacity, NumericPath<TSchema>>;
  /** The caller's id of this hold (a string of 1 to 1024 characters), e.g. a checkout id. */
  readonly holdId: string;
  /** How long the hold lasts, in milliseconds, from the server's clock: a whole number, 1 to one year. */
  readonly ttlMs: number;
  /**
   * Most live holds one document keeps: at the bound, a hold resolves `tooManyHolds` (nothing
   * held) until holds are settled. A whole number from 1 to 10 000.
   * @default 1000
   */
  readonly maxHolds?: number | undefined;
}

/** Options of confirmPlace and releasePlace. */
export interface SettlePlaceOptions<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
> extends PlaceHoldBaseOptions<TSchema, TArray, TCounter> {
  /** The id the hold was taken with. */
  readonly holdId: string;
}

/** Options of releaseExpiredPlaces. */
export interface ReleaseExpiredPlacesOptions<
  TSchema extends Document = Document,
  TCounter extends string = NumericPath<TSchema>,
> {
  /** Which documents to sweep. @default {} (every document with a lapsed hold) */
  readonly filter?: Filter<TSchema> | undefined;
  /** Dotted path of the counter (members + live holds). */
  readonly counter: CheckedPath<TCounter, NumericPath<TSchema>>;
  /** Dotted path of the array of hold records. @default '_holds' */
  readonly holdsField?: string | undefined;
  /** Run inside the caller's session or transaction. */
  readonly session?: ClientSession | undefined;
}

/** What holdPlace did, told by `outcome`. Fields a branch lacks are typed `?: never`. */
export type HoldPlaceResult<TSchema extends Document = Document> =
  | {
      /** This call holds a place for the member until `expiresAt` (server time). */
      readonly outcome: 'held';
      /** When the hold lapses, by the server's clock. */
      readonly expiresAt: Date;
      /** The hold record as the document holds it after this call. */
      readonly hold: PlaceHold;
      /** The document as this call left it. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** A live hold already has this `holdId` or this member (`hold`); nothing held. */
      readonly outcome: 'alreadyHeld';
      /** The hold record as the document holds it after this call. */
      readonly hold: PlaceHold;
      /** Absent on this outcome. */
      readonly expiresAt?: never;
      /** The document as this call left it (after reclaiming lapsed holds). */
      readonly document: WithId<TSchema>;
    }
  | {
      /** `holdId` names a hold already settled (`hold.state`); nothing held. */
      readonly outcome: 'alreadySettled';
      /** The hold record as the document holds it after this call. */
      readonly hold: PlaceHold;
      /** Absent on this outcome. */
      readonly expiresAt?: never;
      /** The document as this call left it (after reclaiming lapsed holds). */
      readonly document: WithId<TSchema>;
    }
  | {
      /**
       * The member is in the array (wins over the other refusals), or every place is taken by
       * members and live holds (`full`), or `maxHolds` live holds exist (`tooManyHolds`).
       */
      readonly outcome: 'alreadyMember' | 'full' | 'tooManyHolds';
      /** Absent on this outcome. */
      readonly hold?: never;
      /** Absent on this outcome. */
      readonly expiresAt?: never;
      /** The document as this call left it (after reclaiming lapsed holds). */
      readonly document: WithId<TSchema>;
    }
  | {
      /** No document matches `filter`. */
      readonly outcome: 'notFound';
      /** Absent on this outcome. */
      readonly hold?: never;
      /** Absent on this outcome. */
      readonly expiresAt?: never;
      /** Absent on this outcome. */
      readonly document?: never;
    };

/** What confirmPlace or releasePlace did, told by `outcome`. */
export type SettlePlaceResult<
  TSchema extends Document = Document,
  TWon extends 'confirmed' | 'released' = 'confirmed' | 'released',
> =
  | {
      /**
       * `confirmed` / `released`: this call settled the live hold. `alreadyConfirmed`,
       * `alreadyReleased`, `expired`: it was settled before (by another call, or by lapsing),
       * nothing changed.
       */
      readonly outcome: TWon | 'alreadyConfirmed' | 'alreadyReleased' | 'expired';
      /** The hold record as the document holds it after this call. */
      readonly hold: PlaceHold;
      /** The document as this call left it (after reclaiming lapsed holds). */
      readonly document: WithId<TSchema>;
    }
  | {
      /**
       * The document holds no record of `holdId`: never taken there, or settled longer ago than
       * the last SETTLED_HOLDS_KEPT settlements.
       */
      readonly outcome: 'unknownHold';
      /** Absent on this outcome. */
      readonly hold?: never;
      /** The document as this call left it (after reclaiming lapsed holds). */
      readonly document: WithId<TSchema>;
    }
  | {
      /** No document matches `filter`. */
      readonly outcome: 'notFound';
      /** Absent on this outcome. */
      readonly hold?: never;
      /** Absent on this outcome. */
      readonly document?: never;
    };

/** What releaseExpiredPlaces did. */
export interface ReleaseExpiredPlacesResult {
  /** Documents whose lapsed holds this sweep reclaimed. */
  readonly swept: number;
}

// =============================================================================================
// Validation

const BASE_OPTIONS = ['filter', 'array', 'counter', 'holdsField', 'session'];
const HOLD_OPTIONS = [...BASE_OPTIONS, 'member', 'capacity', 'holdId', 'ttlMs', 'maxHolds'];
const SETTLE_OPTIONS = [...BASE_OPTIONS, 'holdId'];
const SWEEP_OPTIONS = ['filter', 'counter', 'holdsField', 'session'];

function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

interface Place {
  readonly filter: Document;
  readonly array: string;
  readonly counter: string;
  readonly holds: string;
  readonly holdId: string;
  readonly session: ClientSession | undefined;
}

function holdIdOf(v: Validator, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 1024) {
    v.fail('holdId', `must be a string of 1 to 1024 characters, got ${describe(value)}`);
  }
  return value as string;
}

function validatePlace<TSchema extends Document>(
  v: Validator,
  collection: Collection<TSchema>,
  options: PlaceHoldBaseOptions<TSchema> & { readonly holdId: string },
  known: readonly string[],
): Place {
  v.options(options);
  v.knownKeys(options, known);
  const filter = v.filter(options.filter);
  if (!selectsOneDocument(filter)) {
    v.fail('filter', 'must select one document by `_id` equality, e.g. { _id: eventId }');
  }
  const array = v.path(options.array, 'array');
  const counter = v.path(options.counter, 'counter');
  if (overlaps(counter, array)) v.fail('counter', `overlaps the array "${array}"`);
  const holds = v.path(
    options.holdsField === undefined ? '_holds' : options.holdsField,
    'holdsField',
  );
  if (overlaps(holds, array) || overlaps(holds, counter)) {
    v.fail('holdsField', 'must name a field of its own, not the array or the counter');
  }
  const holdId = holdIdOf(v, options.holdId);
  const session = v.session(options.session, collection);
  return { filter, array, counter, holds, holdId, session };
}

// =============================================================================================
// Expressions

const field = (path: string): string => `$${path}`;

/** The hold records, an empty array when the field is missing or no array. */
function records(p: { readonly holds: string }): Document {
  return { $cond: [{ $isArray: field(p.holds) }, field(p.holds), []] };
}

const isHeld = (x: string): Document => ({ $eq: [`${x}.state`, 'held'] });
const lapsed = (x: string): Document => ({
  $and: [isHeld(x), { $lte: [`${x}.expiresAt`, '$$NOW'] }],
});
const filterBy = (input: unknown, cond: Document): Document => ({
  $filter: { input, as: 'h', cond },
});

/**
 * Live records first, then the last SETTLED_HOLDS_KEPT settled ones in settlement order (the
 * input has them in that order, newly settled last).
 */
function arranged(input: unknown): Document {
  return {
    $concatArrays: [
      filterBy(input, isHeld('$$h')),
      { $slice: [filterBy(input, { $not: [isHeld('$$h')] }), -SETTLED_HOLDS_KEPT] },
    ],
  };
}

/** The data's shape the pipeline relies on: array, counter and holds of the expected types. */
function shapeExpression(
  p: Place | { array?: undefined; counter: string; holds: string },
): Document {
  return {
    $and: [
      ...(p.array === undefined
        ? []
        : [{ $in: [{ $type: field(p.array) }, ['array', 'missing']] }]),
      { $in: [{ $type: field(p.counter) }, ['int', 'long', 'double', 'decimal', 'missing']] },
      { $in: [{ $type: field(p.holds) }, ['array', 'missing']] },
    ],
  };
}

/**
 * The pipeline stage that reclaims lapsed holds: each `held` record whose `expiresAt` ≤ `$$NOW`
 * becomes `expired` and its place is given back (counter − 1 each). A document without lapsed
 * holds (or with data of another shape) is replaced by itself: no write.
 */
function reclaimStage(p: { array?: string | undefined; counter: string; holds: string }): Document {
  const all = records(p);
  const gone = filterBy(all, lapsed('$$h'));
  const count = { $size: gone };
  return {
    $replaceWith: {
      $cond: [
        { $and: [shapeExpression(p as Place), { $gt: [count, 0] }] },
        writtenDocument([
          [
            p.holds,
            arranged({
              $concatArrays: [
                filterBy(all, { $not: [lapsed('$$h')] }),
                { $map: { input: gone, in: { $mergeObjects: ['$$this', { state: 'expired' }] } } },
              ],
            }),
          ],
          [p.counter, { $add: [{ $ifNull: [field(p.counter), 0] }, { $multiply: [count, -1] }] }],
        ]),
        '$$ROOT',
      ],
    },
  };
}

/** The first record with this holdId (missing when none). */
function recordOf(p: Place): Document {
  return {
    $arrayElemAt: [filterBy(records(p), { $eq: ['$$h.holdId', { $literal: p.holdId }] }), 0],
  };
}

/** A fresh id per call, stored in the records it writes: the document tells who settled. */
function callId(): string {
  return randomBytes(12).toString('hex');
}

interface Reply {
  readonly document: Document;
  readonly hold: PlaceHold | undefined;
  /** The `call` stamp of the record of `holdId`: this call's id when it wrote the record. */
  readonly call: unknown;
  /** The extra record asked for (holdPlace: the member's live hold). */
  readonly other: PlaceHold | undefined;
  readonly verdicts: Readonly<Record<string, boolean>>;
}

/**
 * One findOneAndUpdate: the reclaim stage, then `$replaceWith: { $cond: [guard, written,
 * '$$ROOT'] }`, returning the document after (a projection reads the record of `holdId` and
 * the verdicts off it). `null` when no document matches.
 */
async function run<TSchema extends Document>(
  primitive: string,
  collection: Collection<TSchema>,
  p: Place,
  guard: Document,
  writes: readonly Write[],
  verdicts: Readonly<Record<string, Document>>,
  other?: Document,
): Promise<Reply | null> {
  const projection = {
    _id: 0,
    document: '$$ROOT',
    hold: recordOf(p),
    ...(other === undefined ? {} : { other }),
    verdicts: { $mergeObjects: [verdicts] },
  };
  const value = await collection.findOneAndUpdate(
    p.filter as Filter<TSchema>,
    [reclaimStage(p), { $replaceWith: { $cond: [guard, writtenDocument(writes), '$$ROOT'] } }],
    {
      returnDocument: 'after',
      projection,
      ...(p.session === undefined ? {} : { session: p.session }),
    },
  );
  if (value === null) return null;
  // A retried command is answered with the unprojected image (here: the document after the
  // update); the projection reads no clock, so it says on that image what it said then.
  const reply = isUnprojectedImage(value)
    ? await projectRetryImage(primitive, collection, value, projection, p.session)
    : value;
  const { document, hold, other: found, verdicts: answers } = reply as Document;
  if (
    !isPlainObject(document) ||
    !isPlainObject(answers) ||
    !Object.keys(verdicts).every((key) => typeof answers[key] === 'boolean') ||
    (hold !== undefined && !isPlainObject(hold)) ||
    (found !== undefined && !isPlainObject(found))
  ) {
    throw new MongoAtomicsError(
      `${primitive}: the server did not evaluate the findAndModify projection that tells the outcomes apart. MongoDB 4.4 or later is required: upgrade the server`,
    );
  }
  return {
    document,
    hold: hold === undefined ? undefined : toHold(hold),
    call: hold === undefined ? undefined : hold.call,
    other: found === undefined ? undefined : toHold(found),
    verdicts: answers as Record<string, boolean>,
  };
}

function toHold(record: Record<string, unknown>): PlaceHold {
  return {
    holdId: record.holdId as string,
    member: record.member,
    expiresAt: record.expiresAt as Date,
    state: record.state as PlaceHoldState,
  };
}

/** Data the pipeline cannot count (a guard that failed with no verdict explaining it). */
function refuseShape(primitive: string, p: Place, document: Document, capacity?: unknown): never {
  const check = (option: string, path: string, ok: (value: unknown) => boolean, want: string) => {
    const value = valueAlong(document, path);
    if (!ok(value)) {
      throw new InvalidArgumentError(
        primitive,
        option,
        `names "${path}", but the matched document holds ${describe(value)} there: ${want}; nothing was changed`,
      );
    }
  };
  check('array', p.array, (x) => x === undefined || Array.isArray(x), 'an array is needed');
  check(
    'counter',
    p.counter,
    (x) => x === undefined || numericValue(x) !== undefined,
    'a number is needed (missing counts as 0)',
  );
  check(
    'holdsField',
    p.holds,
    (x) => x === undefined || Array.isArray(x),
    'an array of hold records is needed',
  );
  if (typeof capacity === 'string') {
    const problem = notANumber(valueAlong(document, capacity));
    if (problem !== undefined) {
      throw new InvalidArgumentError(
        primitive,
        'capacity',
        `names "${capacity}", but the matched document ${problem}: no place can be counted, nothing was held`,
      );
    }
  }
  throw new MongoAtomicsError(
    `${primitive}: the update was refused for no reason the server reported`,
  );
}

// =============================================================================================
// The primitives

/**
 * Holds a place in the set for `member` until `ttlMs` after the server's clock, counted
 * against `capacity` like a member.
 *
 * - **Sends** one `findOneAndUpdate` (the filter must select by `_id`): a pipeline whose first
 *   stage reclaims the document's lapsed holds (each `held` record with `expiresAt` ≤ `$$NOW`
 *   becomes `expired`, the counter goes down by one for each), and whose second applies the
 *   hold under the guard, on the reclaimed document: the member is not in the array, no live
 *   hold has this `holdId` or this member, no record (live or settled) has this `holdId`,
 *   `(counter ?? 0) < capacity`, fewer than `maxHolds` live holds. The hold appends
 *   `{ holdId, member, expiresAt: $$NOW + ttlMs, state: 'held', call }` and adds 1 to the
 *   counter. `returnDocument: 'after'` with a projection that reads the verdicts off the
 *   result.
 * - **Outcomes**: `held` (with `expiresAt`), `alreadyMember`, `alreadyHeld` (the live hold),
 *   `alreadySettled` (this `holdId` was settled: its record), `full`, `tooManyHolds`,
 *   `notFound`; in that order of precedence.
 * - **A refused call** still writes the reclaim when the document had lapsed holds (its
 *   outcome is then read off the reclaimed document: a `full` refusal was full after the
 *   reclaim); with none, the document is replaced by itself: no write.
 * - **Atomic**: reclaim, guard and hold are one update of one document: members + live holds
 *   never exceed the capacity, whatever the interleaving.
 * - **Round trips**: 1 on every path (plus one `aggregate` when the driver retried the command
 *   and the server answered from its stored image).
 * - **Time**: the server's `$$NOW` only; client clocks play no part.
 *
 * @example
 * ```ts
 * const held = await holdPlace(events, {
 *   filter: { _id: eventId }, array: 'registration_ids', counter: 'tickets_sold',
 *   capacity: 'capacity', member: userId, holdId: checkoutId, ttlMs: 10 * 60_000,
 * });
 * if (held.outcome === 'full') return res.status(409).send('sold out');
 * ```
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent; and, from the
 *   one command's answer (nothing held), when the document holds something other than an
 *   array at `array`/`holdsField`, a non-number counter, or no number at the capacity field.
 */
export function holdPlace<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
  TCapacity extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: HoldPlaceOptions<TSchema, TArray, TCounter, TCapacity>,
): Promise<HoldPlaceResult<TSchema>>;
export async function holdPlace<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: HoldPlaceOptions<TSchema>,
): Promise<HoldPlaceResult<TSchema>> {
  const primitive = 'holdPlace';
  const v = validator(primitive);
  v.collection(collection);
  const p = validatePlace(v, collection, options, HOLD_OPTIONS);
  const member = v.scalar(options.member, 'member');
  const room = roomExpression(v, options.capacity, p);
  const ttlMs = v.integer(options.ttlMs, 'ttlMs', 1);
  if (ttlMs > LARGEST_TTL_MS)
    v.fail('ttlMs', `must be at most one year (${LARGEST_TTL_MS}), got ${ttlMs}`);
  const maxHolds = v.integer(
    options.maxHolds === undefined ? DEFAULT_MAX_HOLDS : options.maxHolds,
    'maxHolds',
    1,
  );
  if (maxHolds > LARGEST_MAX_HOLDS)
    v.fail('maxHolds', `must be at most ${LARGEST_MAX_HOLDS}, got ${maxHolds}`);
  const call = callId();

  const all = records(p);
  const live = filterBy(all, isHeld('$$h'));
  const verdicts = {
    member: holdsExpression(p.array, member),
    heldByMember: {
      $in: [{ $literal: member }, { $map: { input: live, in: '$$this.member' } }],
    },
    idTaken: { $in: [{ $literal: p.holdId }, { $map: { input: all, in: '$$this.holdId' } }] },
    room,
    bounded: { $lt: [{ $size: live }, maxHolds] },
    shape: shapeExpression(p),
  };
  const guard = {
    $and: [
      verdicts.shape,
      verdicts.room,
      verdicts.bounded,
      { $not: [verdicts.member] },
      { $not: [verdicts.idTaken] },
      { $not: [verdicts.heldByMember] },
    ],
  };
  const record = {
    holdId: { $literal: p.holdId },
    member: { $literal: member },
    expiresAt: { $add: ['$$NOW', ttlMs] },
    state: 'held',
    call: { $literal: call },
  };
  const reply = await run(
    primitive,
    collection,
    p,
    guard,
    [
      [p.holds, { $concatArrays: [live, [record], filterBy(all, { $not: [isHeld('$$h')] })] }],
      [p.counter, { $add: [{ $ifNull: [field(p.counter), 0] }, { $literal: 1 }] }],
    ],
    verdicts,
    { $arrayElemAt: [filterBy(live, { $eq: ['$$h.member', { $literal: member }] }), 0] },
  );
  if (reply === null) return { outcome: 'notFound' };
  const document = reply.document as WithId<TSchema>;
  const { hold, verdicts: said } = reply;
  if (hold !== undefined && reply.call === call) {
    return { outcome: 'held', expiresAt: hold.expiresAt, hold, document };
  }
  if (!said.shape) return refuseShape(primitive, p, document);
  if (said.member) return { outcome: 'alreadyMember', document };
  if (hold?.state === 'held') return { outcome: 'alreadyHeld', hold, document };
  if (reply.other !== undefined) return { outcome: 'alreadyHeld', hold: reply.other, document };
  if (hold !== undefined) return { outcome: 'alreadySettled', hold, document };
  if (!said.room) {
    // A capacity field that is missing or no number lets nobody in: no full set (as
    // addToSetWithCapacity). refuseShape throws for it; else the set is full.
    if (
      typeof options.capacity === 'string' &&
      notANumber(valueAlong(document, options.capacity)) !== undefined
    ) {
      return refuseShape(primitive, p, document, options.capacity);
    }
    return { outcome: 'full', document };
  }
  if (!said.bounded) return { outcome: 'tooManyHolds', document };
  return refuseShape(primitive, p, document, options.capacity);
}

/** `(counter ?? 0) < capacity`, as addToSetWithCapacity evaluates it (a literal or a numeric field). */
function roomExpression(v: Validator, capacity: unknown, p: Place): Document {
  const count = { $ifNull: [field(p.counter), 0] };
  if (typeof capacity !== 'string') {
    return { $lt: [count, { $literal: v.integer(capacity, 'capacity', 1) }] };
  }
  const path = v.path(capacity, 'capacity');
  if (overlaps(path, p.counter) || overlaps(path, p.array) || overlaps(path, p.holds)) {
    v.fail('capacity', 'must name a field of its own, not the counter, the array or holdsField');
  }
  return {
    $and: [
      { $in: [{ $type: field(path) }, ['int', 'long', 'double', 'decimal']] },
      { $lt: [count, field(path)] },
    ],
  };
}

/** confirmPlace and releasePlace: settle the live hold `holdId` as `to`. */
async function settle<TSchema extends Document>(
  primitive: string,
  collection: Collection<TSchema>,
  options: SettlePlaceOptions<TSchema>,
  to: 'confirmed' | 'released',
): Promise<SettlePlaceResult<TSchema>> {
  const v = validator(primitive);
  v.collection(collection);
  const p = validatePlace(v, collection, options, SETTLE_OPTIONS);
  const call = callId();
  const all = records(p);
  const id = { $literal: p.holdId };
  const mine = filterBy(all, { $eq: ['$$h.holdId', id] });
  const live = {
    $anyElementTrue: [{ $map: { input: mine, in: { $eq: ['$$this.state', 'held'] } } }],
  };
  const verdicts = { live, shape: shapeExpression(p) };
  // The record settled by this call goes last: the settled records stay in settlement order.
  const settled = arranged({
    $concatArrays: [
      filterBy(all, { $ne: ['$$h.holdId', id] }),
      {
        $map: {
          input: mine,
          in: { $mergeObjects: ['$$this', { state: to, call: { $literal: call } }] },
        },
      },
    ],
  });
  const heldMember = { $arrayElemAt: [{ $map: { input: mine, in: '$$this.member' } }, 0] };
  const members = { $ifNull: [field(p.array), []] };
  const already = { $in: [heldMember, members] };
  const counter = { $ifNull: [field(p.counter), 0] };
  const writes: Write[] =
    to === 'released'
      ? [
          [p.holds, settled],
          [p.counter, { $add: [counter, { $literal: -1 }] }],
        ]
      : [
          [p.holds, settled],
          // The held place becomes the member's: counted once. A member already in the array
          // (added meanwhile by addToSetWithCapacity) keeps its place, and the hold's is freed.
          [p.array, { $cond: [already, members, { $concatArrays: [members, [heldMember]] }] }],
          [p.counter, { $cond: [already, { $add: [counter, { $literal: -1 }] }, counter] }],
        ];
  const reply = await run(
    primitive,
    collection,
    p,
    { $and: [verdicts.shape, live] },
    writes,
    verdicts,
  );
  if (reply === null) return { outcome: 'notFound' };
  const document = reply.document as WithId<TSchema>;
  const { hold } = reply;
  if (hold === undefined) {
    if (!reply.verdicts.shape) return refuseShape(primitive, p, document);
    return { outcome: 'unknownHold', document };
  }
  if (hold.state === to && reply.call === call) return { outcome: to, hold, document };
  if (hold.state === 'held') return refuseShape(primitive, p, document);
  const earlier =
    hold.state === 'confirmed'
      ? 'alreadyConfirmed'
      : hold.state === 'released'
        ? 'alreadyReleased'
        : 'expired';
  return { outcome: earlier, hold, document };
}

/**
 * Confirms the live hold `holdId`: its member joins the array (the place it held is now the
 * member's; the counter does not move), and the record is kept as `confirmed`.
 *
 * - **Sends** one `findOneAndUpdate` (the filter must select by `_id`): the reclaim of lapsed
 *   holds (see holdPlace), then, when the record of `holdId` is still `held`, the confirmation.
 * - **Outcomes**: `confirmed` (this call), `expired` (the hold lapsed first: the reclaim in this
 *   very command, another call's or a sweep's), `alreadyConfirmed`, `alreadyReleased`,
 *   `unknownHold` (no record: never taken there, or settled more than SETTLED_HOLDS_KEPT
 *   settlements ago), `notFound` (no document).
 * - **Exactly one winner**: of a confirmation, a release and the expiry of one hold, exactly one
 *   settles it; the others are told which did. A repeated confirmation answers `alreadyConfirmed`.
 * - **Round trips**: 1 on every path.
 * - A member already in the array (added meanwhile by addToSetWithCapacity) is not added twice:
 *   the hold's place is freed instead (counter − 1).
 *
 * @example
 * ```ts
 * const paid = await confirmPlace(events, {
 *   filter: { _id: eventId }, array: 'registration_ids', counter: 'tickets_sold', holdId: checkoutId,
 * });
 * if (paid.outcome === 'expired') await refund(checkoutId);
 * ```
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent; and when the
 *   document holds data of another shape at `array`, `counter` or `holdsField` (nothing written).
 */
export function confirmPlace<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: SettlePlaceOptions<TSchema, TArray, TCounter>,
): Promise<SettlePlaceResult<TSchema, 'confirmed'>>;
export function confirmPlace<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: SettlePlaceOptions<TSchema>,
): Promise<SettlePlaceResult<TSchema, 'confirmed'>> {
  return settle('confirmPlace', collection, options, 'confirmed') as Promise<
    SettlePlaceResult<TSchema, 'confirmed'>
  >;
}

/**
 * Releases the live hold `holdId`: its place is given back (counter − 1), the record is kept as
 * `released`.
 *
 * - **Sends** one `findOneAndUpdate` (the filter must select by `_id`): the reclaim of lapsed
 *   holds, then, when the record of `holdId` is still `held`, the release.
 * - **Outcomes**: `released` (this call), `expired`, `alreadyConfirmed` (to give up a confirmed
 *   place, use removeFromSetWithCapacity), `alreadyReleased`, `unknownHold`, `notFound`.
 * - **Exactly one winner**, **round trips**: as for confirmPlace (1 on every path).
 *
 * @example
 * ```ts
 * await releasePlace(events, {
 *   filter: { _id: eventId }, array: 'registration_ids', counter: 'tickets_sold', holdId: checkoutId,
 * });
 * ```
 *
 * @throws InvalidArgumentError as confirmPlace.
 */
export function releasePlace<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: SettlePlaceOptions<TSchema, TArray, TCounter>,
): Promise<SettlePlaceResult<TSchema, 'released'>>;
export function releasePlace<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: SettlePlaceOptions<TSchema>,
): Promise<SettlePlaceResult<TSchema, 'released'>> {
  return settle('releasePlace', collection, options, 'released') as Promise<
    SettlePlaceResult<TSchema, 'released'>
  >;
}

/**
 * Reclaims the lapsed holds of every document `filter` selects that has some: the sweep for
 * documents no hold call touches (a hold, confirm or release call reclaims its own document
 * first, so no sweep is needed for correctness, only to free places of idle documents for
 * plain addToSetWithCapacity calls and for readers of the counter).
 *
 * - **Sends** one `updateMany`: filter `filter` AND `$expr` "some `held` record has
 *   `expiresAt` ≤ `$$NOW`", update the reclaim stage of holdPlace. Each document's reclaim is
 *   atomic and idempotent: sweeps from several processes at once, or a sweep racing hold
 *   calls, reclaim each lapsed hold exactly once (its place is given back once).
 * - **Round trips**: 1.
 * - Documents whose counter or holds field has another shape are left alone.
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent.
 */
export async function releaseExpiredPlaces<
  TSchema extends Document = Document,
  TCounter extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: ReleaseExpiredPlacesOptions<TSchema, TCounter>,
): Promise<ReleaseExpiredPlacesResult> {
  const v = validator('releaseExpiredPlaces');
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, SWEEP_OPTIONS);
  const filter = options.filter === undefined ? {} : v.filter(options.filter);
  const counter = v.path(options.counter, 'counter');
  const holds = v.path(
    options.holdsField === undefined ? '_holds' : options.holdsField,
    'holdsField',
  );
  if (overlaps(holds, counter))
    v.fail('holdsField', 'must name a field of its own, not the counter');
  const session = v.session(options.session, collection);
  const p = { counter, holds };
  const anyLapsed = {
    $anyElementTrue: [{ $map: { input: records(p), as: 'h', in: lapsed('$$h') } }],
  };
  const result = await collection.updateMany(
    { $and: [filter, { $expr: anyLapsed }] } as Filter<TSchema>,
    [reclaimStage(p)],
    session === undefined ? {} : { session },
  );
  return { swept: result.modifiedCount };
}
