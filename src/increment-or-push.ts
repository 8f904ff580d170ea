/**
 * `incrementOrPushArrayItem`: "add to cart" without duplicate lines.
 *
 * The race it closes: the common two-step version (`$inc` on `{ 'courses.courseId': id }` with
 * the positional `$`, then `$push` when nothing matched) lets two concurrent requests both see
 * "not in the array" and both push, leaving two lines for one product. Here the existence check,
 * the increment and the push are one pipeline update of one document, which MongoDB applies
 * atomically: concurrent calls are serialised by the server and the second one sees the first
 * one's element.
 */
import type { ClientSession, Collection, Document, Filter, WithId } from 'mongodb';
import { isDuplicateKeyError, modifyFacts } from './driver.js';
import { MongoAtomicsError } from './errors.js';
import {
  type AlreadyApplied,
  assertNoOverlap,
  OP_ID_OPTIONS,
  type OpGuard,
  type OpIdOptions,
  opGuard,
  opRecordExpression,
  opSeenExpression,
  type WithoutOpId,
} from './op-log.js';
import type {
  ArrayElementAt,
  ArrayPath,
  CheckedPath,
  NumericFieldName,
  PathRecord,
  ScalarFieldName,
} from './paths.js';
import { isUnprojectedImage, projectRetryImage } from './retry-image.js';
import { describe, isPlainObject, type ScalarValue, validator } from './validate.js';
import { getField } from './values.js';

const PRIMITIVE = 'incrementOrPushArrayItem';
const v = validator(PRIMITIVE);

/**
 * The identity of an element of type `TItem`: its scalar fields and their values. Any field
 * names for an untyped element.
 */
export type ElementMatch<TItem> = PathRecord<ScalarFieldName<TItem>, ScalarValue>;

/** Counters (or caps) of an element of type `TItem`: its numeric fields. Any field names for an untyped element. */
export type ElementCounters<TItem> = PathRecord<NumericFieldName<TItem>, number>;

/**
 * Options of incrementOrPushArrayItem.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TArray - the array's path, inferred from `array`: its element type types the keys
 *   of `match`, `inc` and `max`, and the result's `item`.
 */
export interface IncrementOrPushOptions<
  TSchema extends Document = Document,
  TArray extends string = ArrayPath<TSchema>,
> extends OpIdOptions {
  /**
   * Selects the parent document, e.g. `{ userId }` or `{ _id: sessionId }`. It should select
   * at most one document (when several match, the first in natural order is changed), and
   * should not test the array's elements: the element is found by `match`. With `upsert`, its
   * equality fields seed the created document, and only a unique index on those fields keeps
   * two concurrent calls from creating two parents.
   */
  readonly filter: Filter<TSchema>;
  /**
   * Dotted path to the array, e.g. `'courses'` or `'data.cart'`. A missing array, and missing
   * parent documents on the path, are created. Every segment names a field (a numeric segment
   * is a field name, not an array index). Parents on the path should be documents or missing:
   * like any pipeline `$set`, the update replaces a scalar parent with a document, and maps
   * over an array parent. With a typed collection, only dotted paths of the schema that hold an
   * array compile (see ArrayPath); with `Collection<Document>`, any string. A value typed
   * `string` is checked at run time only (and the element is then untyped).
   */
  readonly array: CheckedPath<TArray, ArrayPath<TSchema>>;
  /**
   * The element's identity: one or more field names and scalar values, e.g. `{ courseId }` or
   * `{ productId, size, color }`. Compared with aggregation `$eq` by the server (numbers of
   * different types are equal when their values are; the collection's default collation
   * applies to strings). Objects and arrays are rejected, so a request body cannot smuggle in
   * query operators. With a typed collection, the keys are the element type's scalar fields;
   * with `Collection<Document>` (or `any` elements), any field names.
   */
  readonly match: ElementMatch<ArrayElementAt<TSchema, TArray>>;
  /**
   * Counters to add to the element (finite numbers greater than 0). A new element starts with
   * these values; an existing element missing a counter (or holding null) counts from 0. With
   * a typed collection, the keys are the element type's numeric fields; with
   * `Collection<Document>`, any field names.
   * @default { quantity: 1 }
   */
  readonly inc?: ElementCounters<ArrayElementAt<TSchema, TArray>> | undefined;
  /**
   * Extra fields written only into a newly pushed element (name, price, …), stored as given
   * (values are never interpreted as expressions). Keys must not repeat `match` or `inc` keys.
   * Functions, Symbols, invalid Dates and class instances that are not BSON values (which the
   * driver would drop or mangle) and keys named `__proto__`, `constructor` or `prototype` at
   * any depth are refused.
   */
  readonly fields?: Readonly<Record<string, unknown>>;
  /**
   * Caps per counter (keys must be keys of `inc`). When an existing matching element's counter
   * plus its increment would exceed its cap, nothing changes and the call resolves
   * `limitReached`. A cap below its own increment could never be met, so it is rejected. With a
   * typed collection, the keys are the element type's numeric fields.
   */
  readonly max?: ElementCounters<ArrayElementAt<TSchema, TArray>> | undefined;
  /**
   * Create the parent document when `filter` matches none. Needs a unique index on the
   * filter's equality fields to stay race-free: see the function's documentation.
   * @default false
   */
  readonly upsert?: boolean;
  /**
   * Runs the update in this session (and in its transaction, if one is open). `undefined` runs
   * without one.
   */
  readonly session?: ClientSession | undefined;
}

/**
 * What happened. `item` is the element as it is after the call (for `limitReached`: as it is,
 * unchanged). Fields a branch lacks are typed `?: never`, so destructuring narrows.
 */
export type IncrementOrPushResult<TItem extends Document = Document> =
  | {
      /** An element with this identity existed; its counters were incremented. */
      readonly outcome: 'incremented';
      /** The element as it is after the increment. */
      readonly item: TItem;
      /** Absent: the parent document existed. */
      readonly created?: never;
    }
  | {
      /** No element had this identity; a new one was appended. */
      readonly outcome: 'pushed';
      /** The new element, as appended. */
      readonly item: TItem;
      /** The parent document did not exist and was inserted (only with `upsert: true`). */
      readonly created: boolean;
    }
  | {
      /** The element exists, but an increment would pass its `max`; nothing changed. */
      readonly outcome: 'limitReached';
      /** The element as it is, unchanged. */
      readonly item: TItem;
      /** Absent: the parent document existed. */
      readonly created?: never;
    }
  | {
      /** No document matched `filter` (and `upsert` was off). Nothing changed. */
      readonly outcome: 'notFound';
      /** Absent: there is no element. */
      readonly item?: never;
      /** Absent: nothing was inserted. */
      readonly created?: never;
    };

/** The outcomes of incrementOrPushArrayItem: `'incremented' | 'pushed' | 'limitReached' | 'notFound'`. */
export type IncrementOrPushOutcome = IncrementOrPushResult['outcome'];

/**
 * The element type a call resolves with: `TItem` when given explicitly (for an untyped
 * collection), else the element type of the array at `TArray` (`Document` when unknown).
 */
export type IncrementOrPushItem<TSchema, TItem, TArray extends string> = [TItem] extends [never]
  ? ArrayElementAt<TSchema, TArray> extends infer E extends Document
    ? E
    : Document
  : TItem;

const KNOWN_OPTIONS = [
  'filter',
  'array',
  'match',
  'inc',
  'fields',
  'max',
  'upsert',
  'session',
  ...OP_ID_OPTIONS,
] as const;

const DEFAULT_INC: Readonly<Record<string, number>> = { quantity: 1 };

/**
 * Increments the counters of the array element with the given identity, or appends a new
 * element when there is none, in one atomic update that never creates duplicate elements.
 *
 * See the example below.
 *
 * **Guard**: `filter` selects the parent document; an element matches when every `match` field
 * equals its value (aggregation `$eq`, evaluated by the server). With `max`, an existing element
 * is only incremented when every counter stays within its cap.
 *
 * **Update**: one `findAndModify` whose update is an aggregation pipeline `$set` of `array`: if
 * elements match, the matching elements' counters are increased (or, over a cap, the array is
 * left as it was); otherwise `{ ...match, ...inc, ...fields }` is appended (in that field
 * order). Every caller string, document or array enters the pipeline through `$literal`, so a
 * string such as `'$price'` or an object such as `{ $inc: 1 }` is stored as given, never
 * evaluated (a number is a constant in any expression and is sent as it is).
 *
 * **One pass**: the element is found without evaluating an expression per element:
 * `$indexOfArray` over the identity values of all elements (`$<array>.<key>`, or their `$zip`
 * for a multi-field identity), which the server extracts and compares natively with the
 * comparison of `$eq`; the array is then rebuilt once around that position (`$slice`, the
 * incremented element, `$slice`). When that position could be wrong (an element before it
 * lacks an identity field, or is not a document, which shifts the positions; or a second
 * element matches), the positions come from a per-element `$eq` instead, so the outcome is
 * always the one described here. The cost grows with the array as a copy does, not as an
 * expression per element does (docs/guides/increment-or-push.md, "Cost").
 *
 * **Atomic**: reading the array, deciding between increment and push, checking the caps and
 * writing all happen inside one single-document update, so concurrent calls cannot both push.
 * The outcome and `item` are computed by the server from the same pre-image in the same
 * command (a projection of the before-image), with the same expressions as the update: the
 * caller sees exactly what was decided, and the reply carries only the element, not the whole
 * parent document.
 *
 * **Retried by the driver** (retryable writes: a network error or a retryable write concern
 * error after the server applied the update): mongod does not run the command again, it
 * answers from the stored before-image of the first execution and does not apply the
 * projection (write_ops_retryability.cpp, SERVER-44151). The update applied once. The outcome
 * is then evaluated by the server, not recomputed in JavaScript: one `aggregate` on the same
 * collection (same session, from the primary) applies the same projection to that image
 * (`$replaceWith: { $literal: image }`), so `$eq` uses the collection's default collation and
 * the counters the server's arithmetic, exactly as the update did: a `match` of `'c1'` that
 * the server matched against a stored `'C1'` (case-insensitive collation) is reported
 * `incremented`, as it was.

 * **Duplicates already present** (left by an older, racy implementation): all matching
 * elements are incremented (or, if any would pass a cap, none), and the first is reported.
 *
 * **Upsert**: the parent is created from the filter's equality fields. Two concurrent upserts
 * on a missing parent are only kept from inserting two parents by a unique index on the
 * filter's fields (`createIndex({ userId: 1 }, { unique: true })`); with one, the loser's
 * insert fails with E11000 (DuplicateKey) and writes nothing, and this function runs the
 * update once more, which then finds the winner's document. MongoDB 4.2+ retries such an
 * upsert itself only when the filter is equality-only on exactly the unique index's fields,
 * collations match and no transaction is open; any other filter (`{ userId, storeId }` with a
 * unique index on `userId` alone, a condition on expiry, a case-insensitive index) hands the
 * E11000 to the client, hence the retry here. Inside a transaction the E11000 is rethrown
 * untouched: the server has already aborted the transaction, and the error carries no
 * TransientTransactionError label, so create the parent before the transaction starts.
 *
 * **Round trips**: one `findAndModify` on every path (incremented, pushed, created,
 * limitReached, notFound); two when an upsert loses the race above. When the driver retried
 * the `findAndModify` and the answer is the stored image, one `aggregate` more: 2 commands of
 * this function (3 on the wire, with the driver's retry); an upsert that created the parent
 * is answered without an image and needs none. Invalid options throw
 * `InvalidArgumentError` naming the option before anything is sent.
 *
 * **Needs**: MongoDB 4.4+ (pipeline updates and `$replaceWith`: 4.2; aggregation expressions
 * in a findAndModify projection: 4.4). No replica set, unless `session` carries a transaction. Field names that
 * start with `$` inside `fields` values can only be stored on MongoDB 5.0+.
 *
 * **Types**: with a typed collection, `array` must be one of its array paths, the keys of
 * `match`, `inc` and `max` fields of that array's element type, and the result's `item` has
 * that element type, inferred (no type argument needed). With an untyped collection
 * (`Collection<Document>`, e.g. Mongoose's `Model.collection`), name the element type as the
 * second type argument: `incrementOrPushArrayItem<Document, CartLine>(carts, …)`.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TItem - the element type, to name for an untyped collection; inferred otherwise.
 * @typeParam TArray - the path in `array`, inferred from the call.
 *
 * @throws InvalidArgumentError for a bad argument (no command sent).
 * @throws the driver's error for server and network failures, including a type error when the
 *   path holds a non-array or a matching element's counter is not a number.
 * @throws MongoAtomicsError when a reply holds neither the outcome projection nor the stored
 *   image (no MongoDB server answers so), or, on a retried command, when the outcome could
 *   not be read from the image (the document was deleted before the `aggregate` ran, or the
 *   `aggregate` failed: its error is the `cause`): the update was applied, so do not repeat
 *   the call blindly.
 *
 * @example
 * ```ts
 * interface CartLine { courseId: string; title: string; price: number; quantity: number }
 * interface Cart { _id: ObjectId; userId: string; courses: CartLine[] }
 * const carts = db.collection<Cart>('carts');
 * await carts.createIndex({ userId: 1 }, { unique: true }); // once: keeps upserts race-free
 *
 * const result = await incrementOrPushArrayItem(carts, {
 *   filter: { userId },
 *   array: 'courses',
 *   match: { courseId },
 *   fields: { title, price },
 *   max: { quantity: 10 },
 *   upsert: true,
 * });
 * if (result.outcome === 'limitReached') return reply(409, 'at most 10 per course');
 * // result.item is a CartLine: the line as it is now
 * ```
 */
export function incrementOrPushArrayItem<
  TSchema extends Document = Document,
  TItem extends Document = never,
  TArray extends string = [TItem] extends [never] ? ArrayPath<TSchema> : string,
>(
  collection: Collection<TSchema>,
  options: WithoutOpId<IncrementOrPushOptions<TSchema, TArray>>,
): Promise<IncrementOrPushResult<IncrementOrPushItem<TSchema, TItem, TArray>>>;
export function incrementOrPushArrayItem<
  TSchema extends Document = Document,
  TItem extends Document = never,
  TArray extends string = [TItem] extends [never] ? ArrayPath<TSchema> : string,
>(
  collection: Collection<TSchema>,
  options: IncrementOrPushOptions<TSchema, TArray>,
): Promise<
  IncrementOrPushResult<IncrementOrPushItem<TSchema, TItem, TArray>> | AlreadyApplied<TSchema>
>;
export async function incrementOrPushArrayItem<
  TSchema extends Document = Document,
  TItem extends Document = Document,
>(
  collection: Collection<TSchema>,
  options: IncrementOrPushOptions<TSchema>,
): Promise<IncrementOrPushResult<TItem> | AlreadyApplied<TSchema>> {
  const plan = validate(collection, options);
  const { pipeline, projection, newItem } = buildCommand(plan);
  const run = () =>
    collection.findOneAndUpdate(plan.filter, pipeline, {
      returnDocument: 'before',
      projection,
      upsert: plan.upsert,
      includeResultMetadata: true,
      ...(plan.session === undefined ? {} : { session: plan.session }),
    });

  let result: Awaited<ReturnType<typeof run>>;
  try {
    result = await run();
  } catch (error) {
    // A lost upsert race: another call inserted the parent between our match and our insert.
    // The failed command wrote nothing, so running it again is safe; it now matches the
    // winner's document. Only once: a second E11000 means the key is held by a document the
    // filter does not match (or the update itself breaks a unique index), not a race.
    if (!plan.upsert || !isDuplicateKeyError(error) || plan.session?.inTransaction() === true) {
      throw error;
    }
    result = await run();
  }
  const { value, upserted } = modifyFacts(result);
  if (value === null) {
    return upserted
      ? { outcome: 'pushed', item: newItem as TItem, created: true }
      : { outcome: 'notFound' };
  }
  // A retried command is answered with the whole before-image, unprojected: the server
  // evaluates the same projection over it (one more command, on this path only).
  const projected = isUnprojectedImage(value)
    ? await projectRetryImage(PRIMITIVE, collection, value, projection, plan.session)
    : value;
  return outcomeOf<TItem, TSchema>(projectedFacts(projected), newItem);
}

// =============================================================================================
// Validation

interface Plan<TSchema extends Document> {
  readonly filter: Filter<TSchema>;
  readonly array: string;
  readonly match: Readonly<Record<string, unknown>>;
  readonly inc: Readonly<Record<string, number>>;
  readonly fields: Readonly<Record<string, unknown>>;
  readonly max: Readonly<Record<string, number>>;
  readonly upsert: boolean;
  readonly session: ClientSession | undefined;
  readonly op: OpGuard | undefined;
}

function record(value: unknown, option: string): Record<string, unknown> {
  if (!isPlainObject(value)) return v.fail(option, `must be an object, got ${describe(value)}`);
  return value;
}

function validate<TSchema extends Document>(
  collection: Collection<TSchema>,
  raw: IncrementOrPushOptions<TSchema>,
): Plan<TSchema> {
  v.collection(collection);
  const options = v.options(raw);
  v.knownKeys(options, KNOWN_OPTIONS);
  const filter = v.filter(options.filter) as Filter<TSchema>;
  const array = v.writablePath(options.array, 'array');

  const match = record(options.match, 'match');
  if (Object.keys(match).length === 0) {
    v.fail('match', 'must name at least one field: it is the identity of the element');
  }
  for (const [key, value] of Object.entries(match)) {
    v.fieldName(key, `match.${key}`);
    v.scalar(value, `match.${key}`);
  }

  // Typed as counters here; the loop below checks that they are.
  const inc = (options.inc === undefined ? DEFAULT_INC : record(options.inc, 'inc')) as Readonly<
    Record<string, number>
  >;
  if (Object.keys(inc).length === 0) v.fail('inc', 'must name at least one counter');
  for (const [key, value] of Object.entries(inc)) {
    v.fieldName(key, `inc.${key}`);
    if (Object.hasOwn(match, key))
      v.fail(`inc.${key}`, 'is also a key of match: name each field in one of match and inc');
    v.positiveNumber(value, `inc.${key}`);
  }

  const fields = options.fields === undefined ? {} : v.storedFields(options.fields, 'fields');
  for (const [key, value] of Object.entries(fields)) {
    v.fieldName(key, `fields.${key}`);
    if (Object.hasOwn(match, key))
      v.fail(`fields.${key}`, 'is also a key of match: name each field in one of match and fields');
    if (Object.hasOwn(inc, key))
      v.fail(`fields.${key}`, 'is also a key of inc: name each field in one of inc and fields');
    if (value === undefined) v.fail(`fields.${key}`, 'is undefined (omit the field instead)');
  }

  const max = options.max === undefined ? {} : record(options.max, 'max');
  for (const [key, value] of Object.entries(max)) {
    // Own keys only: `max: { toString: 5 }` must not find Object.prototype.toString in inc.
    const step = Object.hasOwn(inc, key) ? inc[key] : undefined;
    if (step === undefined) {
      v.fail(`max.${key}`, `must be a key of inc (${Object.keys(inc).join(', ')})`);
    } else if (v.finiteNumber(value, `max.${key}`) < step) {
      // An increment larger than its cap could never apply, not even to a new element.
      v.fail(
        `max.${key}`,
        `is ${String(value)}, below the increment ${step}: it could never apply`,
      );
    }
  }

  const upsert = options.upsert === undefined ? false : v.boolean(options.upsert, 'upsert');
  const session = v.session(options.session, collection);
  const op = opGuard(v, options);
  assertNoOverlap(v, op, array, 'array');
  return {
    op,
    filter,
    array,
    match,
    inc,
    fields,
    max: max as Record<string, number>,
    upsert,
    session,
  };
}

// =============================================================================================
// The command

/** What the command depends on. */
type CommandPlan = Omit<Plan<Document>, 'filter' | 'upsert' | 'session'>;

/**
 * Builds the update pipeline and the projection that reports the decision. Both start from the
 * same expressions over the same pre-image, so what the projection says is what the update did.
 * On a retried command the same projection is evaluated by the server over the returned image
 * (retry-image.ts), so it must only read the document (`$$ROOT`, field paths) and literals.
 *
 * One pass over the array, without an expression per element. `$$idx` lists the positions of
 * the matching elements. It is found with `$indexOfArray` over the identity values of all
 * elements (`$$items.<key>`, or the `$zip` of those arrays for a multi-field identity), which
 * the server extracts and compares natively, with the comparison of `$eq` (the collection's
 * collation, numbers by value; a `$zip` row equals the sought row when every field does). That
 * position is trusted only when it is exact:
 *
 * - a field path over an array skips the elements that lack the field (and non-documents),
 *   which would shift every later position: the identity array must be as long as the array;
 * - duplicates left by an older, racy implementation move together: `$indexOfArray` from the
 *   next position must find no second match.
 *
 * Otherwise (rare) `$$idx` comes from the general path, one `$filter` over the positions with
 * the per-element `$eq`. The array is then rebuilt once: the elements between matches are
 * copied by `$slice`, the matches incremented (`$reduce` over `$$idx`, one step for one match);
 * or the new element is appended.
 */
function buildCommand(plan: CommandPlan): {
  pipeline: Document[];
  projection: Document;
  newItem: Document;
} {
  const { array, match, inc, fields, max, op } = plan;
  const newItem: Document = { ...match, ...inc, ...fields };
  const identity = Object.entries(match);

  const isMatch = (el: string): Document => {
    const clauses = identity.map(([key, value]) => ({
      $eq: [`$$${el}.${key}`, { $literal: value }],
    }));
    return clauses.length === 1 ? (clauses[0] as Document) : { $and: clauses };
  };
  const counterPlus = (el: string, key: string, step: number): Document => ({
    $add: [{ $ifNull: [`$$${el}.${key}`, 0] }, step],
  });
  const incremented = (el: string): Document => ({
    $mergeObjects: [
      `$$${el}`,
      Object.fromEntries(
        Object.entries(inc).map(([key, step]) => [key, counterPlus(el, key, step)]),
      ),
    ],
  });
  const caps = Object.entries(max);
  const overCap = (el: string): Document => ({
    $or: caps.map(([key, cap]) => ({
      $gt: [counterPlus(el, key, inc[key] as number), cap],
    })),
  });
  /** `body` with `$$el` bound to the element at position `position`. */
  const atPosition = (position: string, body: Document): Document => ({
    $let: { vars: { el: { $arrayElemAt: ['$$items', position] } }, in: body },
  });

  const single = identity.length === 1 ? identity[0] : undefined;
  const keys: unknown =
    single === undefined
      ? { $zip: { inputs: identity.map(([key]) => `$$items.${key}`) } }
      : `$$items.${single[0]}`;
  const sought: Document = {
    $literal: single === undefined ? identity.map(([, v]) => v) : single[1],
  };
  const general: Document = {
    $filter: {
      input: { $range: [0, { $size: '$$items' }] },
      as: 'i',
      cond: atPosition('$$i', isMatch('el')),
    },
  };

  /**
   * `$$items`: the array (or []); `$$idx`: the positions of the matching elements; then
   * `body`. `$size` of a non-array is a server error, the type error it always was.
   */
  const located = (body: Document): Document => ({
    $let: {
      vars: { items: { $ifNull: [`$${array}`, []] } },
      in: {
        $let: {
          vars: { keys },
          in: {
            $let: {
              vars: { first: { $indexOfArray: ['$$keys', sought] } },
              in: {
                $let: {
                  vars: {
                    idx: {
                      $cond: [
                        {
                          $and: [
                            { $eq: [{ $size: '$$keys' }, { $size: '$$items' }] },
                            {
                              $eq: [
                                { $indexOfArray: ['$$keys', sought, { $add: ['$$first', 1] }] },
                                -1,
                              ],
                            },
                          ],
                        },
                        { $cond: [{ $eq: ['$$first', -1] }, [], ['$$first']] },
                        general,
                      ],
                    },
                  },
                  in: body,
                },
              },
            },
          },
        },
      },
    },
  });

  const none: Document = { $eq: [{ $size: '$$idx' }, 0] };
  // Any matching element over a cap blocks the whole call (duplicates move together).
  const limited: Document =
    caps.length === 0
      ? { $literal: false }
      : {
          $anyElementTrue: [
            { $map: { input: '$$idx', as: 'i', in: atPosition('$$i', overCap('el')) } },
          ],
        };
  // For each match: the elements since the previous one, then the match incremented; then the
  // elements after the last match. ($slice [a, -n] keeps the last n; n = 0 keeps none.)
  const incrementMatches: Document = {
    $let: {
      vars: {
        built: {
          $reduce: {
            input: '$$idx',
            initialValue: { out: [], from: 0 },
            in: {
              out: {
                $concatArrays: [
                  '$$value.out',
                  {
                    $slice: [
                      { $slice: ['$$items', '$$this'] },
                      { $subtract: ['$$value.from', '$$this'] },
                    ],
                  },
                  [atPosition('$$this', incremented('el'))],
                ],
              },
              from: { $add: ['$$this', 1] },
            },
          },
        },
      },
      in: {
        $concatArrays: [
          '$$built.out',
          { $slice: ['$$items', '$$built.from', { $size: '$$items' }] },
        ],
      },
    },
  };
  const nextArray = located({
    $cond: [
      none,
      { $concatArrays: ['$$items', [{ $literal: newItem }]] },
      caps.length === 0 ? incrementMatches : { $cond: [limited, '$$items', incrementMatches] },
    ],
  });

  // Evaluated on the before-image: how many elements matched, whether a cap blocked, and the
  // first matching element as the update left it.
  const facts = located({
    $cond: [
      none,
      { matched: { $literal: 0 }, limited: { $literal: false }, item: { $literal: {} } },
      {
        $let: {
          vars: { first: { $arrayElemAt: ['$$items', { $arrayElemAt: ['$$idx', 0] }] }, limited },
          in: {
            matched: { $size: '$$idx' },
            limited: '$$limited',
            item: { $cond: ['$$limited', '$$first', incremented('first')] },
          },
        },
      },
    ],
  });
  if (op === undefined) {
    return { pipeline: [{ $set: { [array]: nextArray } }], projection: { _id: 0, facts }, newItem };
  }

  // With an opId, a document that already recorded it keeps its array and log as they are
  // (the guard lives in the pipeline, not the filter: a filter guard would turn a repeat into
  // an upsert insert). The id is recorded only when something is applied, not on
  // limitReached, which only a cap can cause.
  const seen = opSeenExpression(op);
  const skip =
    caps.length === 0 ? seen : { $or: [seen, located({ $and: [{ $not: [none] }, limited] })] };
  const keepLog = { $ifNull: [`$${op.field}`, '$$REMOVE'] };
  return {
    pipeline: [
      {
        $set: {
          [array]: { $cond: [seen, `$${array}`, nextArray] },
          [op.field]: { $cond: [skip, keepLog, opRecordExpression(op)] },
        },
      },
    ],
    projection: {
      _id: 0,
      facts: { $mergeObjects: [facts, { seen, document: { $cond: [seen, '$$ROOT', null] } }] },
    },
    newItem,
  };
}

// =============================================================================================
// Outcome

interface Facts {
  readonly matched: number;
  readonly limited: boolean;
  readonly item: Document;
  /** With an opId: the document had already recorded it (and `document` is the document). */
  readonly seen?: boolean;
  readonly document?: Document | null;
}

/** The facts the projection reports, read from a reply that carries it. */
function projectedFacts(value: Document): Facts {
  const facts = getField(value, 'facts') as Partial<Facts> | undefined;
  if (
    !isPlainObject(facts) ||
    typeof facts.matched !== 'number' ||
    typeof facts.limited !== 'boolean' ||
    !isPlainObject(facts.item)
  ) {
    // Neither the projection nor a stored image (which always holds `_id`): a server before
    // 4.4 rejects the projection outright, so this is not a reply MongoDB sends.
    throw new MongoAtomicsError(
      `${PRIMITIVE}: the server's reply held neither the outcome projection nor the document; the update may have been applied, so do not repeat it blindly (pass an opId to make repeats safe)`,
    );
  }
  return facts as Facts;
}

/** The outcome of an update that matched a document, from the facts its projection reports. */
function outcomeOf<TItem extends Document, TSchema extends Document>(
  facts: Facts,
  newItem: Document,
): IncrementOrPushResult<TItem> | AlreadyApplied<TSchema> {
  if (facts.seen === true && isPlainObject(facts.document)) {
    return { outcome: 'alreadyApplied', document: facts.document as WithId<TSchema> };
  }
  if (facts.matched === 0) return { outcome: 'pushed', item: newItem as TItem, created: false };
  if (facts.limited) return { outcome: 'limitReached', item: facts.item as TItem };
  return { outcome: 'incremented', item: facts.item as TItem };
}
