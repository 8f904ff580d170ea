/**
 * Quantity holds: reserve stock now, confirm it or lose it later (issue 13).
 *
 * The race they close: checkout and ticketing flows reserve stock while the buyer pays. The
 * usual code decrements now and lets a cron job restore the reservations that lapsed. That job
 * is a second writer working from a stale view: when it runs late the stock stays stranded (the
 * shop shows "sold out" with nothing sold); when two of them run, or one runs twice, or it
 * restores a reservation that a payment confirmed a moment earlier, the same units come back
 * twice and are sold twice.
 *
 * Here the hold is recorded in the stocked document itself, in the same atomic update that takes
 * the amount (`{ id, amount, expiresAt, call }` in an array, `_holds` by default), and every
 * call on that document first reclaims its lapsed holds inside its own update: their amounts go
 * back to the field and their records move to a bounded log of settled holds. A hold is settled
 * exactly once (confirmed, released or expired) because settling moves its record out of the
 * live array in one single-document update: whoever comes second finds it in the log. Expiry is
 * decided by the server's clock (`$$NOW`), never by a client's.
 */
import { randomUUID } from 'node:crypto';
import type { ClientSession, Collection, Document, Filter, WithId } from 'mongodb';
import { InvalidArgumentError, MongoAtomicsError } from './errors.js';
import { writtenDocument } from './failure-read.js';
import type { CheckedPath, NumericPath } from './paths.js';
import { isUnprojectedImage, projectRetryImage } from './retry-image.js';
import { isPlainObject, notANumber, type Validator, validator } from './validate.js';
import { numericValue } from './values.js';

/** Default array field of the live holds. */
export const DEFAULT_HOLDS_FIELD = '_holds';
/** Default array field of the settled-holds log. */
export const DEFAULT_SETTLED_FIELD = '_holdsSettled';
/** Default and largest `maxHolds`. */
export const DEFAULT_MAX_HOLDS = 100;
export const MAX_MAX_HOLDS = 1000;
/** Default and largest `keepSettled`. */
export const DEFAULT_KEEP_SETTLED = 100;
export const MAX_KEEP_SETTLED = 1000;
/** The longest hold: ten years, in milliseconds. */
export const MAX_TTL_MS = 10 * 365 * 24 * 60 * 60 * 1000;

/** A live hold, as stored in the holds array. */
export interface HoldRecord {
  /** The caller's hold id. */
  readonly id: string;
  /** The amount taken from the field while the hold lives. */
  readonly amount: number;
  /** When the hold lapses, by the server's clock (`$$NOW` + `ttlMs` when it was taken). */
  readonly expiresAt: Date;
  /** A random id of the call that took the hold (tells that call's own hold from an older one). */
  readonly call: string;
}

/** How a hold was settled. */
export type HoldSettlement = 'confirmed' | 'released' | 'expired';

/** An entry of the settled-holds log. */
export interface SettledHoldRecord {
  /** The hold id the caller chose. */
  readonly id: string;
  /** The amount held (taken from the field while the hold lives). */
  readonly amount: number;
  /** How the hold was settled. */
  readonly outcome: HoldSettlement;
  /** A random id of the call that settled it (a reclaim settles every lapsed hold at once). */
  readonly call: string;
}

/** Where a document keeps its holds; the same values must be passed to every holds call. */
export interface HoldsLayoutOptions {
  /**
   * The array field of the live holds (`HoldRecord`s). Must be missing or an array.
   * @default '_holds'
   */
  readonly holdsField?: string;
  /**
   * The array field of the settled-holds log (`SettledHoldRecord`s): the newest `keepSettled`
   * entries, so that a repeated confirm, release or hold of a settled id answers what happened
   * to it instead of `unknownHold` or a second hold. Must be missing or an array.
   * @default '_holdsSettled'
   */
  readonly settledField?: string;
  /**
   * How many settled holds the log keeps (newest first out last). An id older than that is
   * forgotten: a confirm or release of it answers `unknownHold`, and a hold with it may be taken
   * again. At most 1000.
   * @default 100
   */
  readonly keepSettled?: number;
}

/**
 * Options of holdQuantity.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TField - the path in `field`, checked against the schema's numeric paths.
 */
export interface HoldQuantityOptions<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
> extends HoldsLayoutOptions {
  /**
   * Selects the one document to hold from, e.g. `{ _id: productId }`. When several match, the
   * first found is the one held from (as findOneAndUpdate does): select by `_id` or a unique key.
   */
  readonly filter: Filter<TSchema>;
  /** The numeric field the amount is taken from, e.g. `'stock'` (as in guardedDecrement). */
  readonly field: CheckedPath<TField, NumericPath<TSchema>>;
  /** How much to hold: a finite number greater than 0. Use integers (units, cents). */
  readonly amount: number;
  /** The caller's id of this hold (e.g. the checkout id): a non-empty string of at most 200 characters. */
  readonly holdId: string;
  /** How long the hold lives, in milliseconds of the server's clock: a whole number from 1 to ten years. */
  readonly ttlMs: number;
  /**
   * The value the field may not go below.
   * @default 0
   */
  readonly floor?: number;
  /**
   * How many live holds one document may carry; at the bound a new hold is refused
   * (`tooManyHolds`) until one is settled or lapses. At most 1000.
   * @default 100
   */
  readonly maxHolds?: number;
  /** Run inside the caller's session or transaction (a session of the collection's client). */
  readonly session?: ClientSession | undefined;
}

/** A live hold as the outcomes report it. */
export interface HoldInfo {
  /** The hold id the caller chose. */
  readonly id: string;
  /** The amount held (taken from the field while the hold lives). */
  readonly amount: number;
  /** When it lapses, by the server's clock. */
  readonly expiresAt: Date;
}

/** What holdQuantity did, told by `outcome`. Fields a branch lacks are typed `?: never`. */
export type HoldQuantityResult<TSchema extends Document = Document> =
  | {
      /** Taken: `field` went down by `amount` and the hold is recorded. */
      readonly outcome: 'held';
      /** The hold: its id, amount and expiry (the expiry computed by the server from `$$NOW`). */
      readonly hold: HoldInfo;
      /** The document after the update (lapsed holds reclaimed, this hold taken). */
      readonly document: WithId<TSchema>;
      /** Absent on this outcome. */
      readonly available?: never;
      /** Absent on this outcome. */
      readonly settled?: never;
    }
  | {
      /** A live hold with this id exists already (a repeat): nothing taken again. */
      readonly outcome: 'alreadyHeld';
      /** That hold, as stored. */
      readonly hold: HoldInfo;
      /** Absent on this outcome. */
      readonly document?: never;
      /** Absent on this outcome. */
      readonly available?: never;
      /** Absent on this outcome. */
      readonly settled?: never;
    }
  | {
      /** This id was settled (still in the log): a hold id is used once. Nothing taken. */
      readonly outcome: 'alreadySettled';
      /** How it was settled. */
      readonly settled: HoldSettlement;
      /** Absent on this outcome. */
      readonly document?: never;
      /** Absent on this outcome. */
      readonly hold?: never;
      /** Absent on this outcome. */
      readonly available?: never;
    }
  | {
      /** Not enough above the floor, after the lapsed holds came back. Nothing taken. */
      readonly outcome: 'insufficient';
      /** field − floor after the reclaim, at least 0 (informational). */
      readonly available: number;
      /** Absent on this outcome. */
      readonly document?: never;
      /** Absent on this outcome. */
      readonly hold?: never;
      /** Absent on this outcome. */
      readonly settled?: never;
    }
  | {
      /** The document carries `maxHolds` live holds already. Nothing taken. */
      readonly outcome: 'tooManyHolds';
      /** The bound that was reached (live holds per document). */
      readonly maxHolds: number;
      /** Absent on this outcome. */
      readonly document?: never;
      /** Absent on this outcome. */
      readonly hold?: never;
      /** Absent on this outcome. */
      readonly available?: never;
      /** Absent on this outcome. */
      readonly settled?: never;
    }
  | {
      /** No document matches `filter`. */
      readonly outcome: 'notFound';
      /** Absent on this outcome. */
      readonly document?: never;
      /** Absent on this outcome. */
      readonly hold?: never;
      /** Absent on this outcome. */
      readonly available?: never;
      /** Absent on this outcome. */
      readonly settled?: never;
    };

/** Options of confirmHold and releaseHold. */
export interface SettleHoldOptions<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
> extends HoldsLayoutOptions {
  /** Selects the document the hold was taken from (the same filter as the hold's). */
  readonly filter: Filter<TSchema>;
  /**
   * The numeric field the hold was taken from: a lapsed hold's amount goes back to it in the
   * same update (and, for releaseHold, the released amount).
   */
  readonly field: CheckedPath<TField, NumericPath<TSchema>>;
  /** The hold's id. */
  readonly holdId: string;
  /** Run inside the caller's session or transaction (a session of the collection's client). */
  readonly session?: ClientSession | undefined;
}

/** Outcomes that confirmHold and releaseHold share. */
export type SettleHoldCommonResult =
  | {
      /** The hold had lapsed: its amount is back in the field (by this call or earlier). */
      readonly outcome: 'expired';
      /** The amount the hold had taken. */
      readonly amount: number;
      /** Absent on this outcome. */
      readonly document?: never;
    }
  | {
      /** The id was confirmed earlier (a repeat): nothing changed. */
      readonly outcome: 'alreadyConfirmed';
      /** The amount the hold had taken. */
      readonly amount: number;
      /** Absent on this outcome. */
      readonly document?: never;
    }
  | {
      /** The id was released earlier (a repeat): nothing changed. */
      readonly outcome: 'alreadyReleased';
      /** The amount the hold had taken. */
      readonly amount: number;
      /** Absent on this outcome. */
      readonly document?: never;
    }
  | {
      /**
       * The document holds no live hold and no log entry with this id: never held there, or
       * settled so long ago that the log forgot it (see `keepSettled`). Nothing changed. (The
       * seat holds' confirmPlace/releasePlace answer the same case with the same outcome.)
       */
      readonly outcome: 'unknownHold';
      /** Absent on this outcome. */
      readonly amount?: never;
      /** Absent on this outcome. */
      readonly document?: never;
    }
  | {
      /** No document matches `filter`. Nothing changed. */
      readonly outcome: 'notFound';
      /** Absent on this outcome. */
      readonly amount?: never;
      /** Absent on this outcome. */
      readonly document?: never;
    };

/** What confirmHold did. */
export type ConfirmHoldResult<TSchema extends Document = Document> =
  | {
      /** Made permanent: the amount stays taken, the hold record moved to the log. */
      readonly outcome: 'confirmed';
      /** The amount held (taken from the field while the hold lives). */
      readonly amount: number;
      /** The document after the update. */
      readonly document: WithId<TSchema>;
    }
  | SettleHoldCommonResult;

/** What releaseHold did. */
export type ReleaseHoldResult<TSchema extends Document = Document> =
  | {
      /** Given back: the amount is back in the field, the hold record moved to the log. */
      readonly outcome: 'released';
      /** The amount held (taken from the field while the hold lives). */
      readonly amount: number;
      /** The document after the update. */
      readonly document: WithId<TSchema>;
    }
  | SettleHoldCommonResult;

/** Options of releaseExpiredHolds. */
export interface ReleaseExpiredHoldsOptions<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
> extends HoldsLayoutOptions {
  /** Narrows the documents swept (e.g. `{ warehouse: 'north' }`). @default every document */
  readonly filter?: Filter<TSchema>;
  /** The numeric field the holds were taken from. */
  readonly field: CheckedPath<TField, NumericPath<TSchema>>;
  /** Run inside the caller's session (a session of the collection's client). */
  readonly session?: ClientSession | undefined;
}

/** What releaseExpiredHolds did. */
export interface ReleaseExpiredHoldsResult {
  /** Documents that had a lapsed hold when the sweep reached them. */
  readonly matched: number;
  /** Documents whose lapsed holds this sweep reclaimed. */
  readonly reclaimed: number;
}

// =============================================================================================
// Expressions (internal to this module)

/** What the reclaim expression needs to know about a document's layout. */
interface ReclaimSpec {
  /** The numeric field a lapsed hold's amount goes back to; undefined: records only. */
  readonly field?: string | undefined;
  readonly holdsField: string;
  readonly settledField: string;
  readonly keepSettled: number;
  /** The random id of the call, written into the settled entries it creates. */
  readonly call: string;
}

/** The array at `path`, or [] when it is missing (or no array: see layoutOkExpression). */
function arrayAt(path: string): Document {
  return { $cond: [{ $isArray: `$${path}` }, `$${path}`, []] };
}

/** Is the value at `path` missing or an array? */
function missingOrArray(path: string): Document {
  return { $or: [{ $isArray: `$${path}` }, { $eq: [{ $type: `$${path}` }, 'missing'] }] };
}

/**
 * Can the holds expressions write this document? The holds and settled fields are missing or
 * arrays, and the numeric field (when given) holds a number. When not, they write nothing and
 * the callers report the problem.
 */
function layoutOkExpression(spec: Omit<ReclaimSpec, 'call' | 'keepSettled'>): Document {
  const clauses: Document[] = [missingOrArray(spec.holdsField), missingOrArray(spec.settledField)];
  if (spec.field !== undefined) clauses.push({ $isNumber: `$${spec.field}` });
  return { $and: clauses };
}

/** `$filter` of the holds array by a condition on `$$hold`. */
function holdsWhere(holdsField: string, cond: Document): Document {
  return { $filter: { input: arrayAt(holdsField), as: 'hold', cond } };
}

/** Boolean: the document has a hold whose expiry is at or before the server's `$$NOW`. */
function hasExpiredHoldsExpression(holdsField: string): Document {
  return {
    $gt: [{ $size: holdsWhere(holdsField, { $lte: ['$$hold.expiresAt', '$$NOW'] }) }, 0],
  };
}

/** The settled log with `entries` (an array expression) appended, newest `keep` kept. */
function settledAppend(settledField: string, entries: Document, keep: number): Document {
  return { $slice: [{ $concatArrays: [arrayAt(settledField), entries] }, -keep] };
}

/** Settled-log entries for the holds in `holds` (an array expression), all settled as `outcome`. */
function settledEntries(holds: Document | string, outcome: HoldSettlement, call: string): Document {
  return {
    $map: {
      input: holds,
      as: 'hold',
      in: {
        id: '$$hold.id',
        amount: '$$hold.amount',
        outcome: { $literal: outcome },
        call: { $literal: call },
      },
    },
  };
}

/** The sum of the amounts of `holds` (an array expression). */
function amountOf(holds: Document | string): Document {
  return { $sum: { $map: { input: holds, as: 'hold', in: '$$hold.amount' } } };
}

/**
 * The pipeline stage that reclaims a document's lapsed holds, by the server's clock: every
 * hold with `expiresAt <= $$NOW` leaves the holds array, its amount goes back to `field` (when
 * given) and an `expired` entry joins the settled log. A document without lapsed holds, or
 * whose layout is not writable (see layoutOkExpression), is left as it is (no write at all).
 * Idempotent: run twice, the second finds nothing lapsed.
 */
function reclaimExpiredStage(spec: ReclaimSpec): Document {
  const lapsed = { $lte: ['$$hold.expiresAt', '$$NOW'] };
  const live = { $gt: ['$$hold.expiresAt', '$$NOW'] };
  const writes: [string, unknown][] = [
    [spec.holdsField, holdsWhere(spec.holdsField, live)],
    [
      spec.settledField,
      settledAppend(
        spec.settledField,
        settledEntries('$$expired', 'expired', spec.call),
        spec.keepSettled,
      ),
    ],
  ];
  if (spec.field !== undefined) {
    writes.push([spec.field, { $add: [`$${spec.field}`, amountOf('$$expired')] }]);
  }
  return {
    $replaceWith: {
      $let: {
        vars: { expired: holdsWhere(spec.holdsField, lapsed) },
        in: {
          $cond: [
            { $and: [layoutOkExpression(spec), { $gt: [{ $size: '$$expired' }, 0] }] },
            writtenDocument(writes),
            '$$ROOT',
          ],
        },
      },
    },
  };
}

// =============================================================================================
// Validation

const LAYOUT_OPTIONS = ['holdsField', 'settledField', 'keepSettled'] as const;

interface Layout {
  readonly field: string;
  readonly holdsField: string;
  readonly settledField: string;
  readonly keepSettled: number;
}

function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

function validateLayout(v: Validator, options: { field: unknown } & HoldsLayoutOptions): Layout {
  const field = v.writablePath(options.field, 'field');
  const holdsField =
    options.holdsField === undefined
      ? DEFAULT_HOLDS_FIELD
      : v.writablePath(options.holdsField, 'holdsField');
  const settledField =
    options.settledField === undefined
      ? DEFAULT_SETTLED_FIELD
      : v.writablePath(options.settledField, 'settledField');
  const keepSettled =
    options.keepSettled === undefined
      ? DEFAULT_KEEP_SETTLED
      : bounded(v, options.keepSettled, 'keepSettled', MAX_KEEP_SETTLED);
  if (overlaps(holdsField, field)) v.fail('holdsField', `overlaps field "${field}"`);
  if (overlaps(settledField, field)) v.fail('settledField', `overlaps field "${field}"`);
  if (overlaps(settledField, holdsField)) {
    v.fail('settledField', `overlaps holdsField "${holdsField}"`);
  }
  return { field, holdsField, settledField, keepSettled };
}

function bounded(v: Validator, value: unknown, option: string, max: number): number {
  const n = v.integer(value, option, 1);
  if (n > max) v.fail(option, `must be at most ${max}, got ${n}`);
  return n;
}

function validateHoldId(v: Validator, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    v.fail('holdId', 'must be a non-empty string of at most 200 characters');
  }
  return value as string;
}

// =============================================================================================
// Reading the answers

/** The projection's answer, over the after-image; a retried command gets it by aggregate. */
async function answerOf(
  primitive: string,
  collection: Collection<Document>,
  value: Document,
  projection: Document,
  session: ClientSession | undefined,
): Promise<Record<string, unknown>> {
  const projected = isUnprojectedImage(value)
    ? await projectRetryImage(primitive, collection, value, projection, session)
    : value;
  const reply: unknown = projected.r;
  if (
    !isPlainObject(reply) ||
    typeof reply.fieldOk !== 'boolean' ||
    typeof reply.layoutOk !== 'boolean'
  ) {
    throw new MongoAtomicsError(
      `${primitive}: the server did not evaluate the findAndModify projection that tells the outcomes apart. MongoDB 4.4 or later is required: upgrade the server`,
    );
  }
  return reply;
}

/** A present, plain-object entry of the reply (`$arrayElemAt` past the end leaves it out). */
function entry(reply: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const value = Object.hasOwn(reply, key) ? reply[key] : undefined;
  return isPlainObject(value) ? value : undefined;
}

/** Throws the misuse a refused layout means: nothing was written. */
function layoutProblem(
  primitive: string,
  layout: Layout,
  reply: Record<string, unknown>,
): undefined {
  if (!reply.layoutOk) {
    throw new InvalidArgumentError(
      primitive,
      'holdsField',
      `names "${layout.holdsField}" (settled log "${layout.settledField}"), but the matched document holds something other than an array there: nothing was changed`,
    );
  }
  if (!reply.fieldOk) {
    const problem = notANumber(Object.hasOwn(reply, 'current') ? reply.current : undefined);
    throw new InvalidArgumentError(
      primitive,
      'field',
      `names "${layout.field}", but the matched document ${problem ?? 'holds no number there'}: nothing was changed. Check the field name, or store a number in that field`,
    );
  }
  return undefined;
}

function amountIn(record: Record<string, unknown> | undefined): number {
  return numericValue(record?.amount) ?? Number.NaN;
}

function holdInfo(record: Record<string, unknown>): HoldInfo {
  return {
    id: String(record.id),
    amount: amountIn(record),
    expiresAt: record.expiresAt as Date,
  };
}

// =============================================================================================
// holdQuantity

const HOLD_OPTIONS = [
  'filter',
  'field',
  'amount',
  'holdId',
  'ttlMs',
  'floor',
  'maxHolds',
  'session',
  ...LAYOUT_OPTIONS,
] as const;

/**
 * Holds `amount` of a numeric field for `ttlMs`: takes it now, records the hold in the same
 * document, and gives it back by itself if the hold is neither confirmed nor released in time.
 *
 * - **Sends** one `findAndModify`: query `filter`; update a two-stage pipeline: (1) reclaim the
 *   document's lapsed holds (`expiresAt <= $$NOW`: amounts back to `field`, records to the
 *   settled log); (2) if `field − amount ≥ floor`, `holdId` is neither live nor in the settled
 *   log and fewer than `maxHolds` holds live: `field − amount`, and `{ id: holdId, amount,
 *   expiresAt: $$NOW + ttlMs, call }` appended to `holdsField`. `returnDocument: 'after'` with a
 *   projection the server evaluates over the result, which says which outcome it was.
 * - **Outcomes**: `held` (with the hold and the document), `alreadyHeld` (a live hold with this
 *   id: nothing taken twice), `alreadySettled` (this id was confirmed, released or lapsed and is
 *   still in the log: hold ids are used once), `insufficient` (with what is available after the
 *   reclaim), `tooManyHolds` (at the bound), `notFound`.
 * - **A refused call still reclaims**: lapsed holds are given back even when the new hold is
 *   refused (that write is what lets the next buyer in), so `insufficient` may follow a write.
 *   Without lapsed holds a refusal writes nothing (the document is replaced by itself, a no-op).
 * - **Atomic**: reclaim, guard and take are one update of one document: the stock is never
 *   oversold nor stranded, whatever the concurrency and whether or not a sweeper runs.
 * - **Time** is the server's (`$$NOW`): client clocks play no part.
 * - **Bound**: at most `maxHolds` (default 100, at most 1000) live holds per document; the
 *   settled log keeps the newest `keepSettled` (default 100).
 * - **Round trips**: 1 on every path and for any filter. When the driver retried the command
 *   and the server answered from the stored image, one `aggregate` more reads the outcome.
 * - Works on a standalone server; joins the caller's transaction through `session`. Needs
 *   MongoDB 4.4+.
 *
 * @example
 * ```ts
 * const held = await holdQuantity(products, {
 *   filter: { _id: sku }, field: 'stock', amount: 2, holdId: checkoutId, ttlMs: 10 * 60_000,
 * });
 * if (held.outcome === 'insufficient') return res.status(409).json({ available: held.available });
 * ```
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent; on `field` when
 *   the matched document holds no number there, on `holdsField` when it holds something other
 *   than an array in the holds or settled field (nothing was changed).
 */
export async function holdQuantity<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: HoldQuantityOptions<TSchema, TField>,
): Promise<HoldQuantityResult<TSchema>> {
  const v = validator('holdQuantity');
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, HOLD_OPTIONS);
  const filter = v.filter(options.filter);
  const layout = validateLayout(v, options);
  const amount = v.positiveNumber(options.amount, 'amount');
  const holdId = validateHoldId(v, options.holdId);
  const ttlMs = v.integer(options.ttlMs, 'ttlMs', 1);
  if (ttlMs > MAX_TTL_MS)
    v.fail('ttlMs', `must be at most ${MAX_TTL_MS} (ten years), got ${ttlMs}`);
  const floor = options.floor === undefined ? 0 : v.finiteNumber(options.floor, 'floor');
  const maxHolds =
    options.maxHolds === undefined
      ? DEFAULT_MAX_HOLDS
      : bounded(v, options.maxHolds, 'maxHolds', MAX_MAX_HOLDS);
  const session = v.session(options.session, collection);

  const call = randomUUID();
  const { field, holdsField, settledField } = layout;
  const id = { $literal: holdId };
  const ids = (path: string) => ({ $map: { input: arrayAt(path), as: 'hold', in: '$$hold.id' } });
  const guard = {
    $and: [
      layoutOkExpression(layout),
      { $gte: [`$${field}`, floor + amount] },
      { $not: [{ $in: [id, ids(holdsField)] }] },
      { $not: [{ $in: [id, ids(settledField)] }] },
      { $lt: [{ $size: arrayAt(holdsField) }, maxHolds] },
    ],
  };
  const take = writtenDocument([
    [field, { $add: [`$${field}`, -amount] }],
    [
      holdsField,
      {
        $concatArrays: [
          arrayAt(holdsField),
          [
            {
              id,
              amount: { $literal: amount },
              expiresAt: { $add: ['$$NOW', ttlMs] },
              call: { $literal: call },
            },
          ],
        ],
      },
    ],
  ]);
  const pipeline = [
    reclaimExpiredStage({ ...layout, call }),
    { $replaceWith: { $cond: [guard, take, '$$ROOT'] } },
  ];
  // Read over the after-image, which needs no clock: the call's own hold (by `call`) means it
  // was taken; otherwise the guard's clauses, in order, say which one refused.
  const sameId = { $eq: ['$$hold.id', id] };
  const mine = {
    $in: [
      { $literal: call },
      { $map: { input: holdsWhere(holdsField, sameId), as: 'hold', in: '$$hold.call' } },
    ],
  };
  const projection = {
    _id: 0,
    // One expression object, not a sub-projection (see readWithVerdicts in failure-read.ts):
    // `{ r: { mine: … } }` would be read as the projection of a path `r.mine`.
    r: {
      $mergeObjects: [
        {
          mine,
          live: { $arrayElemAt: [holdsWhere(holdsField, sameId), 0] },
          settled: {
            $arrayElemAt: [
              { $filter: { input: arrayAt(settledField), as: 'hold', cond: sameId } },
              -1,
            ],
          },
          count: { $size: arrayAt(holdsField) },
          current: `$${field}`,
          fieldOk: { $isNumber: `$${field}` },
          layoutOk: layoutOkExpression({ holdsField, settledField }),
          document: { $cond: [mine, '$$ROOT', '$$REMOVE'] },
        },
      ],
    },
  };
  const value = await collection.findOneAndUpdate(filter as Filter<TSchema>, pipeline, {
    returnDocument: 'after',
    projection,
    ...(session === undefined ? {} : { session }),
  });
  if (value === null) return { outcome: 'notFound' };
  const reply = await answerOf(
    'holdQuantity',
    collection as unknown as Collection<Document>,
    value,
    projection,
    session,
  );
  const live = entry(reply, 'live');
  if (reply.mine === true && live !== undefined && isPlainObject(reply.document)) {
    return {
      outcome: 'held',
      hold: holdInfo(live),
      document: reply.document as WithId<TSchema>,
    };
  }
  layoutProblem('holdQuantity', layout, reply);
  if (live !== undefined) return { outcome: 'alreadyHeld', hold: holdInfo(live) };
  const settled = entry(reply, 'settled');
  if (settled !== undefined) {
    return { outcome: 'alreadySettled', settled: settled.outcome as HoldSettlement };
  }
  if (typeof reply.count === 'number' && reply.count >= maxHolds) {
    return { outcome: 'tooManyHolds', maxHolds };
  }
  const current = numericValue(reply.current);
  if (current === undefined || Number.isNaN(current)) {
    const problem = notANumber(reply.current) ?? 'holds NaN';
    throw new InvalidArgumentError(
      'holdQuantity',
      'field',
      `names "${field}", but the matched document ${problem}: nothing was held`,
    );
  }
  return { outcome: 'insufficient', available: Math.max(0, current - floor) };
}

// =============================================================================================
// confirmHold and releaseHold

const SETTLE_OPTIONS = ['filter', 'field', 'holdId', 'session', ...LAYOUT_OPTIONS] as const;

async function settleHold<TSchema extends Document>(
  primitive: string,
  collection: Collection<TSchema>,
  options: SettleHoldOptions<TSchema, string>,
  action: 'confirmed' | 'released',
): Promise<Document> {
  const v = validator(primitive);
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, SETTLE_OPTIONS);
  const filter = v.filter(options.filter);
  const layout = validateLayout(v, options);
  const holdId = validateHoldId(v, options.holdId);
  const session = v.session(options.session, collection);

  const call = randomUUID();
  const { field, holdsField, settledField, keepSettled } = layout;
  const id = { $literal: holdId };
  const sameId = { $eq: ['$$hold.id', id] };
  const writes: [string, unknown][] = [
    [holdsField, holdsWhere(holdsField, { $ne: ['$$hold.id', id] })],
    [
      settledField,
      settledAppend(settledField, settledEntries('$$target', action, call), keepSettled),
    ],
  ];
  if (action === 'released') {
    writes.push([field, { $add: [`$${field}`, amountOf('$$target')] }]);
  }
  const pipeline = [
    reclaimExpiredStage({ ...layout, call }),
    {
      $replaceWith: {
        $let: {
          vars: { target: holdsWhere(holdsField, sameId) },
          in: {
            $cond: [
              { $and: [layoutOkExpression(layout), { $gt: [{ $size: '$$target' }, 0] }] },
              writtenDocument(writes),
              '$$ROOT',
            ],
          },
        },
      },
    },
  ];
  const settledWithId = { $filter: { input: arrayAt(settledField), as: 'hold', cond: sameId } };
  const mine = {
    $in: [{ $literal: call }, { $map: { input: settledWithId, as: 'hold', in: '$$hold.call' } }],
  };
  const projection = {
    _id: 0,
    r: {
      $mergeObjects: [
        {
          settled: { $arrayElemAt: [settledWithId, -1] },
          current: `$${field}`,
          fieldOk: { $isNumber: `$${field}` },
          layoutOk: layoutOkExpression({ holdsField, settledField }),
          document: { $cond: [mine, '$$ROOT', '$$REMOVE'] },
        },
      ],
    },
  };
  const value = await collection.findOneAndUpdate(filter as Filter<TSchema>, pipeline, {
    returnDocument: 'after',
    projection,
    ...(session === undefined ? {} : { session }),
  });
  if (value === null) return { outcome: 'notFound' };
  const reply = await answerOf(
    primitive,
    collection as unknown as Collection<Document>,
    value,
    projection,
    session,
  );
  layoutProblem(primitive, layout, reply);
  const settled = entry(reply, 'settled');
  if (settled === undefined) return { outcome: 'unknownHold' };
  const amount = amountIn(settled);
  if (settled.call === call && settled.outcome === action && isPlainObject(reply.document)) {
    return { outcome: action, amount, document: reply.document };
  }
  if (settled.outcome === 'confirmed') return { outcome: 'alreadyConfirmed', amount };
  if (settled.outcome === 'released') return { outcome: 'alreadyReleased', amount };
  return { outcome: 'expired', amount };
}

/**
 * Confirms a hold: the amount stays taken for good and the hold record moves to the settled
 * log. Exactly once per hold id: of a confirm, a release and the hold's expiry, the first to
 * reach the document wins and the others are told what happened.
 *
 * - **Sends** one `findAndModify`: the same reclaim stage as holdQuantity (lapsed holds,
 *   this one included, go back), then, if a live hold has `holdId`, its record moves to the
 *   settled log as `confirmed`. `returnDocument: 'after'` with a projection reading the log.
 * - **Outcomes**: `confirmed` (with the amount and the document), `expired` (the hold had
 *   lapsed: its amount is back in `field`, given back by this very update or earlier),
 *   `alreadyConfirmed`, `alreadyReleased` (repeats: nothing changed), `unknownHold` (no such
 *   hold in the document, or it left the bounded log long ago), `notFound` (no document
 *   matches).
 * - **Round trips**: 1 on every path (one `aggregate` more on a driver-retried command).
 *
 * @throws InvalidArgumentError for invalid options (nothing sent), or when the matched
 *   document's `field` holds no number or its holds fields no arrays (nothing changed).
 */
export async function confirmHold<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: SettleHoldOptions<TSchema, TField>,
): Promise<ConfirmHoldResult<TSchema>> {
  return (await settleHold(
    'confirmHold',
    collection,
    options as SettleHoldOptions<TSchema, string>,
    'confirmed',
  )) as ConfirmHoldResult<TSchema>;
}

/**
 * Releases a hold: the amount goes back to `field` and the hold record moves to the settled
 * log. Exactly once per hold id, as confirmHold (the same single command, the same reclaim
 * first).
 *
 * - **Outcomes**: `released` (with the amount and the document), `expired`,
 *   `alreadyConfirmed`, `alreadyReleased`, `unknownHold`, `notFound` (see confirmHold).
 * - **Round trips**: 1 on every path (one `aggregate` more on a driver-retried command).
 *
 * @throws InvalidArgumentError as confirmHold.
 */
export async function releaseHold<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: SettleHoldOptions<TSchema, TField>,
): Promise<ReleaseHoldResult<TSchema>> {
  return (await settleHold(
    'releaseHold',
    collection,
    options as SettleHoldOptions<TSchema, string>,
    'released',
  )) as ReleaseHoldResult<TSchema>;
}

// =============================================================================================
// releaseExpiredHolds

const SWEEP_OPTIONS = ['filter', 'field', 'session', ...LAYOUT_OPTIONS] as const;

/**
 * Reclaims the lapsed holds of documents nobody touches (every holds call reclaims its own
 * document already: this sweep is never needed for correctness, only so that idle stock shows
 * up again).
 *
 * - **Sends** one `update` (multi): query `filter` AND the holds array is not empty AND (by
 *   `$expr` over `$$NOW`) some hold has lapsed; update the same reclaim stage as every holds
 *   call. Each document is reclaimed atomically from its current state, so sweeps running at
 *   once in several processes, a sweep racing a confirm, or a sweep run twice never give an
 *   amount back twice: the second finds nothing lapsed (idempotent).
 * - Not atomic across documents (updateMany never is). The `$expr` cannot use an index: pass a
 *   `filter` that narrows the scan on big collections.
 * - **Returns** how many documents matched and how many were reclaimed.
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent.
 */
export async function releaseExpiredHolds<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: ReleaseExpiredHoldsOptions<TSchema, TField>,
): Promise<ReleaseExpiredHoldsResult> {
  const v = validator('releaseExpiredHolds');
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, SWEEP_OPTIONS);
  const filter = options.filter === undefined ? undefined : v.filter(options.filter);
  const layout = validateLayout(v, options);
  const session = v.session(options.session, collection);
  const lapsed: Document = {
    [`${layout.holdsField}.0`]: { $exists: true },
    $expr: hasExpiredHoldsExpression(layout.holdsField),
  };
  const result = await collection.updateMany(
    (filter === undefined ? lapsed : { $and: [filter, lapsed] }) as Filter<TSchema>,
    [reclaimExpiredStage({ ...layout, call: randomUUID() })],
    session === undefined ? {} : { session },
  );
  return { matched: result.matchedCount, reclaimed: result.modifiedCount };
}
