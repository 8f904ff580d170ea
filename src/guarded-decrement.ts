/**
 * guardedDecrement and guardedDecrementAll: take stock only if enough remains.
 *
 * The races they close (seeds 002 and 003): "read the stock, check it, then decrement" lets two
 * checkouts both see the last 3 units; "decrement, then check for a negative and undo" lets
 * other readers see (and act on) a negative stock, and fails open if the undo never runs. Here
 * the sufficiency check is the update's own filter, so the check and the decrement are one
 * atomic step; for several items, the steps run in one transaction, all or nothing.
 */
import type {
  AnyBulkWriteOperation,
  ClientSession,
  Collection,
  Document,
  Filter,
  MongoClient,
  WithId,
} from 'mongodb';
import { primaryRead } from './driver.js';
import {
  GiveUpReason,
  InvalidArgumentError,
  isInvalidArgumentError,
  MongoAtomicsError,
  RetryBudgetExhaustedError,
} from './errors.js';
import {
  conditionalCommand,
  deepFreeze,
  readWithVerdicts,
  selectsOneDocument,
  updateWithVerdicts,
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
import type { CheckedPath, NumericPath } from './paths.js';
import { type WithRetryingTransactionOptions, withRetryingTransaction } from './transaction.js';
import { notANumber, type Validator, validator } from './validate.js';
import { numericValue, valueAlong } from './values.js';

/**
 * Options of guardedDecrement.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TField - the path in `field`, inferred from the call and checked against the
 *   schema's numeric paths.
 */
export interface GuardedDecrementOptions<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = string | undefined,
> extends OpIdOptions<TOpId> {
  /** Selects the one document to decrement, e.g. `{ _id: productId }`. */
  readonly filter: Filter<TSchema>;
  /**
   * The numeric field to decrement, e.g. `'stock'` or `'inventory.available'`. With a typed
   * collection, only dotted paths of the schema that hold a number compile (see NumericPath);
   * with `Collection<Document>`, any string. A value typed `string` is checked at run time only.
   */
  readonly field: CheckedPath<TField, NumericPath<TSchema>>;
  /** How much to take: a finite number greater than 0. */
  readonly amount: number;
  /**
   * The value the field may not go below.
   * @default 0
   */
  readonly floor?: number;
  /**
   * Run inside the caller's session or transaction (a session of the collection's own
   * MongoClient). `undefined` runs without one.
   */
  readonly session?: ClientSession | undefined;
}

/**
 * What guardedDecrement did, told by `outcome` (with `opId`, also `alreadyApplied`: see
 * AlreadyApplied). Fields a branch lacks are typed `?: never`, so destructuring narrows.
 */
export type GuardedDecrementResult<TSchema extends Document = Document> =
  | {
      /** Taken: `field` went down by `amount`. */
      readonly outcome: 'decremented';
      /** The document as it is after the decrement. */
      readonly document: WithId<TSchema>;
      /** Absent on this outcome. */
      readonly available?: never;
    }
  | {
      /**
       * Not enough above the floor; nothing changed. (A field that is missing or not a number
       * is no shortage: InvalidArgumentError on `field`.)
       */
      readonly outcome: 'insufficient';
      /**
       * What could still be taken: field − floor, at least 0. Informational: it may change
       * right after it was read.
       */
      readonly available: number;
      /** Absent: only the field was read. */
      readonly document?: never;
    }
  | {
      /** No document matches `filter`; nothing changed. */
      readonly outcome: 'notFound';
      /** Absent: there is no document. */
      readonly document?: never;
      /** Absent on this outcome. */
      readonly available?: never;
    };

/** The guarded statement: only a document with at least `floor + amount` matches. */
function decrementStatement(filter: Document, field: string, amount: number, floor: number) {
  return {
    filter: { $and: [filter, { [field]: { $gte: floor + amount } }] },
    update: { $inc: { [field]: -amount } },
  };
}

/**
 * The refusal for a matched document whose `field` the guard can never match: missing, not a
 * number, or NaN. Reported, not turned into `insufficient` with nothing available, which would
 * hide a misspelt field name or a stock stored as a string behind a business outcome.
 */
function fieldNotNumeric(primitive: string, field: string, whose: string, problem: string) {
  return new InvalidArgumentError(
    primitive,
    'field',
    `names "${field}", but ${whose} ${problem}: nothing was decremented. Check the field name, or store a number (int, long, double or Decimal128) in that field`,
  );
}

/**
 * `insufficient` for a document whose field (`value`, as a query reaches it) failed the guard,
 * with what can still be taken (field − floor, never negative); throws when the field is no
 * number.
 */
function insufficientFrom(value: unknown, field: string, floor: number) {
  const problem = notANumber(value);
  if (problem !== undefined) {
    throw fieldNotNumeric('guardedDecrement', field, 'the matched document', problem);
  }
  return { outcome: 'insufficient', available: availableFrom(value, floor) } as const;
}

/**
 * `value − floor`, never negative; 0 for a non-number or NaN. Informational only (computed in
 * floating point): the outcome is decided by the server.
 */
function availableFrom(value: unknown, floor: number): number {
  const n = numericValue(value);
  return n === undefined || Number.isNaN(n) ? 0 : Math.max(0, n - floor);
}

function validateCommon(v: Validator, options: { field: unknown; floor?: unknown }) {
  const field = v.writablePath(options.field, 'field');
  const floor = options.floor === undefined ? 0 : v.finiteNumber(options.floor, 'floor');
  return { field, floor };
}

/** guardedDecrement's one command (see updateWithVerdicts): take `amount` if `field` ≥ `threshold`. */
function decrementCommand(field: string, amount: number, threshold: number, op?: OpGuard) {
  const seen = opQuestion(op);
  const sufficient = guardHolds(`$${field}`, threshold);
  return conditionalCommand({
    guard: seen === undefined ? sufficient : { $and: [sufficient, { $not: [seen] }] },
    writes: [
      // `$add` of the negated amount computes what `$inc` would (int + int stays an int,
      // overflowing to a long; Decimal128 stays Decimal128), on the server.
      [field, { $add: [`$${field}`, -amount] }],
      ...(op === undefined ? [] : [[op.field, opRecordExpression(op)] as const]),
    ],
    questions: { applied: seen },
    // The field as a query or an aggregation reaches it (an array met on the way is returned
    // whole), to say what a document holds that the guard cannot pass.
    facts: { current: `$${field}` },
    documentWhen: 'applied',
  });
}

/**
 * decrementCommand without an opId, built once per `field`, `amount` and threshold (all it
 * holds: the filter and the session are sent beside it) and kept, frozen, for the next calls.
 * A checkout takes the same few amounts from the same field over and over; a kept command
 * spares each call the few dozen objects of a new one, which would live through the round trip
 * (under concurrency the garbage collector copies them, at a cost above building them).
 * At most KEPT_COMMANDS are kept, the oldest dropped first.
 */
function keptDecrementCommand(field: string, amount: number, threshold: number) {
  // NUL separates: a field path cannot hold one (validated), and each number's text is exact.
  const key = `${field}\0${amount}\0${threshold}`;
  let command = keptCommands.get(key);
  if (command === undefined) {
    command = deepFreeze(decrementCommand(field, amount, threshold));
    if (keptCommands.size >= KEPT_COMMANDS) {
      const oldest = keptCommands.keys().next();
      if (oldest.done !== true) keptCommands.delete(oldest.value);
    }
    keptCommands.set(key, command);
  }
  return command;
}

const KEPT_COMMANDS = 256;
const keptCommands = new Map<string, ReturnType<typeof decrementCommand>>();

const SINGLE_OPTIONS = ['filter', 'field', 'amount', 'floor', 'session', ...OP_ID_OPTIONS] as const;

/**
 * Decrements `field` by `amount` only if at least `amount` remains above `floor`.
 *
 * - **Guard**: `filter` AND `field` is a number ≥ `floor + amount` (a non-numeric or missing
 *   field never passes: InvalidArgumentError on `field`, see below).
 * - **Update**, when `filter` has an `_id` equality (it selects at most one document): the
 *   filter is `filter` alone and the update a pipeline that applies the guard: for a top-level
 *   `field` without `opId`, `$set: { field: { $cond: [guard, field + (−amount), '$field'] } }`;
 *   else `$replaceWith: { $cond: [guard, <the document with field + (−amount) and the id
 *   recorded>, '$$ROOT'] }`. It runs with `returnDocument: 'before'` and a projection
 *   evaluating the guard and the reasons on the same before-image (see updateWithVerdicts in
 *   failure-read.ts). A refused call sets the field, or the document, to itself, which MongoDB
 *   treats as a no-op: nothing is written (no oplog entry, no write conflict in a caller's
 *   transaction). Calls without `opId` reuse one command per `field`, `amount` and `floor`
 *   (built once, frozen; the 256 most recent are kept). With any other filter the guard is in
 *   the filter and the update `$inc: { field: -amount }`, so that of several matching
 *   documents one with enough is taken.
 * - **Atomic**: guard and update are one `findOneAndUpdate` on one document: the stock never
 *   goes below the floor and is never oversold, under any concurrency.
 * - **Round trips**: success: 1 (`findAndModify`). Failure (`insufficient`, `notFound`,
 *   `alreadyApplied`, a non-numeric field): 1 with an `_id` equality in `filter`; else 2, the
 *   second a `find` that tells them apart. When the driver retried a `findAndModify` that the
 *   server had applied and the answer is the stored image, one `aggregate` more evaluates the
 *   projection on it (`_id` filters only).
 * - **`opId`**: also guarded by "this id not yet applied" and records it in the same update; a
 *   repeat resolves `alreadyApplied` with the document as it is.
 * - Works on a standalone server; joins the caller's transaction through `session`. Needs
 *   MongoDB 4.4+ (pipeline updates, expressions in a findAndModify projection).
 * - Use integers (units, cents): `floor + amount` is computed in floating point.
 *
 * @example
 * ```ts
 * interface Product { _id: string; name: string; stock: number }
 * const products = db.collection<Product>('products');
 *
 * const result = await guardedDecrement(products, { filter: { _id: sku }, field: 'stock', amount: 3 });
 * if (result.outcome === 'insufficient') return res.status(409).json({ available: result.available });
 * if (result.outcome === 'notFound') return res.status(404).end();
 * res.json({ left: result.document.stock });
 * ```
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent; and on option
 *   `field` when the matched document lacks the field or holds no number there (a string, null,
 *   NaN, an array on the path, …): a misspelt field or bad data, not a shortage. Found by the
 *   failure path's own command (no extra round trip); nothing was decremented.
 * @throws MongoAtomicsError when the server did not evaluate the projection (before 4.4), or,
 *   on a retried command, when the outcome could not be read from the image (see
 *   retry-image.ts): the decrement was applied, so do not repeat it blindly.
 */
export function guardedDecrement<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = undefined,
>(
  collection: Collection<TSchema>,
  options: GuardedDecrementOptions<TSchema, TField, TOpId>,
): Promise<GuardedDecrementResult<TSchema> | IfOpId<TOpId, AlreadyApplied<TSchema>>>;
export async function guardedDecrement<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: GuardedDecrementOptions<TSchema>,
): Promise<GuardedDecrementResult<TSchema> | AlreadyApplied<TSchema>> {
  const v = validator('guardedDecrement');
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, SINGLE_OPTIONS);
  const filter = v.filter(options.filter);
  const { field, floor } = validateCommon(v, options);
  const amount = v.positiveNumber(options.amount, 'amount');
  const session = v.session(options.session, collection);
  const op = opGuard(v, options);
  assertNoOverlap(v, op, field, 'field');
  const sessionOption = session === undefined ? {} : { session };

  if (selectsOneDocument(filter)) {
    // One command on every path: the guard moves into the update, which writes nothing when
    // it fails, and the projection says why (see updateWithVerdicts).
    const outcome = await updateWithVerdicts(
      'guardedDecrement',
      collection,
      filter,
      op === undefined
        ? keptDecrementCommand(field, amount, floor + amount)
        : decrementCommand(field, amount, floor + amount, op),
      session,
    );
    if (outcome === null) return { outcome: 'notFound' };
    if (outcome.applied) return { outcome: 'decremented', document: outcome.document };
    if (outcome.verdicts.applied && outcome.document !== undefined) {
      return { outcome: 'alreadyApplied', document: outcome.document };
    }
    const current = Object.hasOwn(outcome.facts, 'current') ? outcome.facts.current : undefined;
    return insufficientFrom(current, field, floor);
  }

  // A filter that may match several documents keeps the guard in the filter, which picks one
  // that has enough; when none has, a second command tells `insufficient` from `notFound`.
  const plain = decrementStatement(filter, field, amount, floor);
  const statement = guarded(op, plain.filter, plain.update);
  const updated = await collection.findOneAndUpdate(
    statement.filter as Filter<TSchema>,
    statement.update as Document,
    {
      returnDocument: 'after',
      ...sessionOption,
    },
  );
  if (updated !== null) return { outcome: 'decremented', document: updated };

  if (op === undefined) {
    // No comparison tells `insufficient` from `notFound`: the field alone is read.
    const current = await collection.findOne(filter as Filter<TSchema>, {
      projection: { [field]: 1 },
      ...primaryRead(session),
    });
    if (current === null) return { outcome: 'notFound' };
    return insufficientFrom(valueAlong(current, field), field, floor);
  }
  // With an opId the server says whether the id is recorded (see failure-read.ts), and the
  // whole document is read: `alreadyApplied` returns it.
  const read = await readWithVerdicts(
    'guardedDecrement',
    collection,
    filter,
    { applied: opQuestion(op) },
    session,
  );
  if (read === null) return { outcome: 'notFound' };
  if (read.verdicts.applied) return { outcome: 'alreadyApplied', document: read.document };
  return insufficientFrom(valueAlong(read.document, field), field, floor);
}

/** One line of a guardedDecrementAll order: which document, and how much to take from it. */
export interface DecrementItem<TSchema extends Document = Document> {
  /** Selects the one document this item takes from. */
  readonly filter: Filter<TSchema>;
  /** How much to take: a finite number greater than 0. */
  readonly amount: number;
}

interface DecrementAllCommon<TSchema extends Document, TField extends string> {
  /** The items to take, all or none. Not empty. */
  readonly items: readonly DecrementItem<TSchema>[];
  /**
   * The numeric field every item decrements, e.g. `'stock'`. With a typed collection, only
   * dotted paths of the schema that hold a number compile (see NumericPath); with
   * `Collection<Document>`, any string. A value typed `string` is checked at run time only.
   */
  readonly field: CheckedPath<TField, NumericPath<TSchema>>;
  /**
   * The value no item's field may go below.
   * @default 0
   */
  readonly floor?: number;
}

/** Join the caller's transaction: the caller commits or aborts. */
export interface GuardedDecrementAllInTransaction<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
> extends DecrementAllCommon<TSchema, TField> {
  /** A session with a transaction in progress. */
  readonly session: ClientSession;
  /** Not with `session`: the caller's transaction is joined. */
  readonly client?: undefined;
  /** Not with `session`: the caller runs its own transaction. */
  readonly transaction?: undefined;
}

/** Run in a transaction of its own, retried through withRetryingTransaction. */
export interface GuardedDecrementAllOwnTransaction<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
> extends DecrementAllCommon<TSchema, TField> {
  /**
   * The client to start the transaction on: the collection's own client (another one is refused
   * with InvalidArgumentError before anything is sent).
   */
  readonly client: MongoClient;
  /** Retry budget, backoff, hooks and signal of the transaction runner. */
  readonly transaction?: WithRetryingTransactionOptions | undefined;
  /** Not with `client`: this function runs its own transaction. */
  readonly session?: undefined;
}

/**
 * Options of guardedDecrementAll: `items`, `field` and `floor`, plus either `client` (it runs
 * a transaction of its own) or `session` (it joins the caller's transaction), never both.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TField - the path in `field`, inferred from the call and checked against the
 *   schema's numeric paths.
 */
export type GuardedDecrementAllOptions<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
> =
  | GuardedDecrementAllInTransaction<TSchema, TField>
  | GuardedDecrementAllOwnTransaction<TSchema, TField>;

/** An item of a guardedDecrementAll order that lacks stock. */
export interface Shortage {
  /** Index of the item in `items`. */
  readonly index: number;
  /** The item's `amount`. */
  readonly requested: number;
  /**
   * What its document could still give it (field − floor, at least 0). When several items draw
   * on one document, they are served in order, so this is what the earlier items left.
   * Informational.
   */
  readonly available: number;
}

/**
 * What guardedDecrementAll did, told by `outcome`: all items taken, or none. Fields a branch
 * lacks are typed `?: never`, so destructuring narrows.
 */
export type GuardedDecrementAllResult =
  | {
      /** Every item was taken. */
      readonly outcome: 'decremented';
      /** Absent on this outcome. */
      readonly shortages?: never;
      /** Absent on this outcome. */
      readonly missing?: never;
    }
  | {
      /** Nothing was taken: some items lack stock (and every item's document exists). */
      readonly outcome: 'insufficient';
      /** Every short item, in `items` order. */
      readonly shortages: readonly Shortage[];
      /** Absent on this outcome. */
      readonly missing?: never;
    }
  | {
      /**
       * Nothing was taken: some items' filters match no document. Reported before shortages:
       * the order cannot go through whatever the stock.
       */
      readonly outcome: 'notFound';
      /** The indexes into `items` of every item whose filter matches no document. */
      readonly missing: readonly number[];
      /** Absent: shortages are not reported while items are missing. */
      readonly shortages?: never;
    };

const PRIMITIVE = 'guardedDecrementAll';

const ALL_OPTIONS = ['items', 'field', 'floor', 'session', 'client', 'transaction'] as const;

/** How many times the own-transaction mode tries again when stock came back between the failed attempt and its diagnosis. */
const MAX_DIAGNOSIS_ROUNDS = 5;

/** Thrown inside the own transaction to make the runner abort it; never escapes. */
class ShortfallSignal extends Error {}

interface ItemPlan {
  readonly filter: Document;
  readonly amount: number;
}

/**
 * Takes every item or none: each item decrements its document's `field` by its `amount` only
 * if that much remains above `floor`, and all items apply in one transaction.
 *
 * - **Guard / update per item**: as guardedDecrement.
 * - **Atomic**: all items in one multi-document transaction; a shortage anywhere leaves no
 *   decrement behind, and other readers never see a partial order.
 * - **Own transaction (`client`)**: all guarded updates go as ONE `update` command, then
 *   `commitTransaction`: **2 round trips for any number of items**. If an item falls short,
 *   the transaction is aborted and one `aggregate` lists every short or missing item: 3 round
 *   trips (update, abortTransaction, aggregate). Transient conflicts with concurrent orders,
 *   and a statement that waited while the connection pool was cleared, are retried by
 *   withRetryingTransaction. If that `aggregate` finds every item sufficient (stock came back
 *   meanwhile), the order is tried again, at most 5 rounds in all (then
 *   RetryBudgetExhaustedError, reason `maxAttempts`). Needs a replica set.
 * - **Shortages are decided by the server**: the `aggregate` replays the guarded statements in
 *   order with the server's comparison (`field >= floor + amount`, exact across int, long,
 *   double and Decimal128) and arithmetic (`$add`, as the update's `$inc`), so its verdict is
 *   the update's. `available` alone is computed in JavaScript, for information.
 * - **Caller's transaction (`session`)**: one `aggregate` reads every item's document in the
 *   transaction's snapshot; if all suffice, ONE `update` command applies them: **2 round
 *   trips**, and on a shortage 1, with no write made, so the caller may still commit other
 *   work. (MongoDB has no savepoints: reading first is what lets a shortage leave nothing
 *   behind in a transaction this function does not own.)
 * - Items that name the same document are applied in order, each guard seeing the previous
 *   decrement.
 * - A matched document whose `field` is missing or not a number (a string, null, NaN, …) is
 *   no shortage: the diagnosis throws InvalidArgumentError on option `field`, naming the first
 *   such item; nothing was decremented.
 *
 * @example
 * ```ts
 * interface Product { _id: string; name: string; stock: number }
 * const products = db.collection<Product>('products');
 *
 * const result = await guardedDecrementAll(products, {
 *   client,
 *   field: 'stock',
 *   items: order.lines.map((line) => ({ filter: { _id: line.productId }, amount: line.qty })),
 * });
 * if (result.outcome === 'insufficient') return res.status(409).json(result.shortages);
 * if (result.outcome === 'notFound') return res.status(404).json({ missing: result.missing });
 * ```
 *
 * @throws InvalidArgumentError for invalid options, before anything is sent; and on option
 *   `field` when an item's document lacks the field or holds no number there (see above).
 * @throws RetryBudgetExhaustedError from the own transaction's runner, or after 5 rounds whose
 *   diagnosis found enough stock.
 * @throws TransactionsUnsupportedError with `client` on a standalone mongod.
 */
export async function guardedDecrementAll<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
>(
  collection: Collection<TSchema>,
  options: GuardedDecrementAllOptions<TSchema, TField>,
): Promise<GuardedDecrementAllResult> {
  const v = validator(PRIMITIVE);
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, ALL_OPTIONS);
  if (!Array.isArray(options.items) || options.items.length === 0) {
    v.fail('items', 'must be a non-empty array of { filter, amount }');
  }
  const items: ItemPlan[] = options.items.map((item, index) => {
    v.fields(item, `items.${index}`);
    v.knownKeys(item, ['filter', 'amount'], `items.${index}`);
    return {
      filter: aggregatableFilter(v, item.filter, `items.${index}.filter`),
      amount: v.positiveNumber(item.amount, `items.${index}.amount`),
    };
  });
  const { field, floor } = validateCommon(v, options);

  if (options.session !== undefined) {
    if (options.client !== undefined)
      v.fail('client', 'cannot be combined with "session": pass one of them');
    if (options.transaction !== undefined) {
      v.fail(
        'transaction',
        'applies only with "client"; the caller owns the transaction of "session"',
      );
    }
    const session = v.session(options.session, collection)!;
    if (!session.inTransaction()) {
      v.fail(
        'session',
        'must have a transaction in progress (or pass "client" to run one of its own)',
      );
    }
    return inCallerTransaction(collection, items, field, floor, session);
  }
  if (options.client === undefined)
    v.fail('client', 'or "session" is required: all-or-nothing needs a transaction');
  const client = v.client(options.client, 'client', collection);
  if (options.transaction !== undefined) v.fields(options.transaction, 'transaction');
  return inOwnTransaction(collection, items, field, floor, client, options.transaction);
}

/** Query operators an update accepts but the diagnosis aggregate (`$match` in `$facet`) refuses. */
const NOT_IN_AGGREGATION = new Set(['$where', '$near', '$nearSphere', '$text']);

function aggregatableFilter(v: Validator, filter: unknown, option: string): Document {
  const checked = v.filter(filter, option);
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === 'object' && value !== null) {
      for (const [key, inner] of Object.entries(value)) {
        if (NOT_IN_AGGREGATION.has(key))
          v.fail(
            option,
            `uses ${key}, which the shortage diagnosis (an aggregation) cannot run: select the item's document with other operators (by _id, say)`,
          );
        visit(inner);
      }
    }
  };
  visit(checked);
  return checked;
}

function bulkOperations<TSchema extends Document>(
  items: readonly ItemPlan[],
  field: string,
  floor: number,
): AnyBulkWriteOperation<TSchema>[] {
  return items.map(
    (item) =>
      ({
        updateOne: decrementStatement(item.filter, field, item.amount, floor),
      }) as unknown as AnyBulkWriteOperation<TSchema>,
  );
}

async function inOwnTransaction<TSchema extends Document>(
  collection: Collection<TSchema>,
  items: readonly ItemPlan[],
  field: string,
  floor: number,
  client: MongoClient,
  transaction: WithRetryingTransactionOptions | undefined,
): Promise<GuardedDecrementAllResult> {
  const operations = bulkOperations<TSchema>(items, field, floor);
  // One time budget across rounds: a later round gets what the earlier ones left.
  const started = performance.now();
  for (let round = 1; ; round++) {
    // Round 1 passes `transaction` as given, for the runner to validate before anything is
    // sent; from round 2 on its timeoutMs is known to be a number.
    const options =
      round === 1
        ? transaction
        : {
            ...transaction,
            timeoutMs: Math.max(
              1,
              Math.round((transaction?.timeoutMs ?? 120_000) - (performance.now() - started)),
            ),
          };
    try {
      await withRetryingTransaction(
        client,
        async (session) => {
          const result = await collection.bulkWrite(operations, { session, ordered: true });
          // Each guarded updateOne matches at most one document; fewer matches = a shortfall.
          if (result.matchedCount !== items.length) throw new ShortfallSignal();
        },
        options,
      );
      return { outcome: 'decremented' };
    } catch (error) {
      if (isInvalidArgumentError(error)) {
        // The runner validated `transaction`: name the option as the caller wrote it.
        throw new InvalidArgumentError(
          PRIMITIVE,
          `transaction.${error.option}`,
          error.message.replace(/^.*?option "[^"]*" /, ''),
        );
      }
      if (!(error instanceof ShortfallSignal)) throw error;
    }
    // The runner aborted the transaction: nothing was taken. Find out what was short.
    const diagnosis = await diagnose(collection, items, field, floor, undefined);
    if (diagnosis !== undefined) return diagnosis;
    // Stock came back between the attempt and the read: try again, a bounded number of times.
    if (round >= MAX_DIAGNOSIS_ROUNDS) {
      throw new RetryBudgetExhaustedError(
        `${PRIMITIVE}: ${round} attempts fell short, yet every read afterwards found enough stock: the stock is changing faster than orders can be checked. Nothing was taken; try the order again later`,
        {
          reason: GiveUpReason.MaxAttempts,
          attempts: round,
          elapsedMs: Math.round(performance.now() - started),
          cause: new Error(
            `attempt ${round}: the guarded update matched fewer items than ordered, yet the diagnosis read afterwards found every item sufficient`,
          ),
        },
      );
    }
  }
}

async function inCallerTransaction<TSchema extends Document>(
  collection: Collection<TSchema>,
  items: readonly ItemPlan[],
  field: string,
  floor: number,
  session: ClientSession,
): Promise<GuardedDecrementAllResult> {
  const diagnosis = await diagnose(collection, items, field, floor, session);
  if (diagnosis !== undefined) return diagnosis;
  const operations = bulkOperations<TSchema>(items, field, floor);
  const result = await collection.bulkWrite(operations, { session, ordered: true });
  if (result.matchedCount !== items.length) {
    // Within one snapshot the read above and this write see the same documents, so this means
    // something else wrote through this session meanwhile (parallel operations on a session are
    // unsupported). Some items may have been taken: the transaction must not commit.
    throw new MongoAtomicsError(
      'guardedDecrementAll: the documents changed inside the transaction between its read and its write (parallel operations on one session?); some items may have been taken: abort the transaction, and run one operation at a time on a session',
    );
  }
  return { outcome: 'decremented' };
}

/** The server's verdict on `value >= threshold` as the update's filter `{ $gte: threshold }` has it. */
function guardHolds(value: string, threshold: unknown): Document {
  // The query's `$gte` matches only numbers (type bracketing), never NaN, and compares int,
  // long, double and Decimal128 exactly (Decimal128("0.1") < 0.1 as a double); the
  // aggregation's `$gte` orders values the same way once non-numbers are ruled out.
  return { $and: [{ $isNumber: value }, { $gte: [value, threshold] }] };
}

/**
 * One `aggregate` in which the SERVER decides, item by item, whether the guarded statement
 * would apply, replaying the ordered statements with its own comparison and arithmetic:
 * - a `$facet` branch per item finds its document and the field's value;
 * - a `$reduce` over the items, in order, computes for each the value it sees (the value the
 *   latest earlier item on the same document left, the server telling documents apart by
 *   `_id`; else the stored value), the guard's verdict on it (`seen >= floor + amount`, as the
 *   update's filter), and the value it leaves (`seen + (-amount)` as the update's `$inc`
 *   computes it, when the guard holds).
 * Replaying in JavaScript instead disagreed with the update wherever the server's comparison
 * is exact and JavaScript's is not (a Decimal128 stock against a double amount:
 * Decimal128("0.1") >= 0.1 is false), so a short order looked sufficient.
 *
 * Undefined when every item suffices.
 */
async function diagnose<TSchema extends Document>(
  collection: Collection<TSchema>,
  items: readonly ItemPlan[],
  field: string,
  floor: number,
  session: ClientSession | undefined,
): Promise<GuardedDecrementAllResult | undefined> {
  const facets = Object.fromEntries(
    items.map((item, index) => [
      `i${index}`,
      [{ $match: item.filter }, { $limit: 1 }, { $project: { v: `$${field}` } }],
    ]),
  );
  const steps = items.map((item, index) => ({
    found: { $gt: [{ $size: `$i${index}` }, 0] },
    id: { $arrayElemAt: [`$i${index}._id`, 0] },
    v: { $arrayElemAt: [`$i${index}.v`, 0] },
    threshold: { $literal: floor + item.amount },
    delta: { $literal: -item.amount },
  }));
  // `$$value`: the verdicts so far; `$$this`: the next step. A missing value stays missing.
  const sameDocumentBefore = {
    $filter: {
      input: '$$value',
      as: 'before',
      cond: { $and: ['$$this.found', '$$before.found', { $eq: ['$$before.id', '$$this.id'] }] },
    },
  };
  const verdict = {
    $let: {
      vars: { same: sameDocumentBefore },
      in: {
        $let: {
          vars: {
            seen: {
              $cond: [
                { $gt: [{ $size: '$$same' }, 0] },
                { $let: { vars: { last: { $arrayElemAt: ['$$same', -1] } }, in: '$$last.left' } },
                '$$this.v',
              ],
            },
          },
          in: {
            $let: {
              vars: { ok: guardHolds('$$seen', '$$this.threshold') },
              in: {
                found: '$$this.found',
                id: '$$this.id',
                ok: '$$ok',
                seen: '$$seen',
                left: { $cond: ['$$ok', { $add: ['$$seen', '$$this.delta'] }, '$$seen'] },
              },
            },
          },
        },
      },
    },
  };
  const pipeline = [
    { $match: { $or: items.map((item) => item.filter) } },
    { $facet: facets },
    {
      $project: {
        _id: 0,
        verdicts: {
          $reduce: {
            input: steps,
            initialValue: [],
            in: { $concatArrays: ['$$value', [verdict]] },
          },
        },
      },
    },
  ];
  const [replayed] = await collection
    .aggregate<{ verdicts: Document[] }>(pipeline, primaryRead(session))
    .toArray();

  const missing: number[] = [];
  const shortages: Shortage[] = [];
  items.forEach((item, index) => {
    // `$facet` outputs one document even when `$match` passed none (every facet then empty);
    // a reply without it, or without a verdict for an item, is read as that item missing.
    const verdict = replayed?.verdicts[index];
    if (verdict?.found !== true) {
      missing.push(index);
      return;
    }
    if (verdict.ok === true) return;
    const seen = Object.hasOwn(verdict, 'seen') ? verdict.seen : undefined;
    // The first item to see a non-number is the first on its document (a later item on the
    // same document sees what it left: the same value). Reported whatever the other items say.
    const problem = notANumber(seen);
    if (problem !== undefined) {
      throw fieldNotNumeric(PRIMITIVE, field, `the document of items.${index}`, problem);
    }
    shortages.push({ index, requested: item.amount, available: availableFrom(seen, floor) });
  });
  // With missing items the order cannot go through whatever the stock: `notFound` is reported
  // (and shortages, if any, are not).
  if (missing.length > 0) return { outcome: 'notFound', missing };
  return shortages.length === 0 ? undefined : { outcome: 'insufficient', shortages };
}
