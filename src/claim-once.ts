/**
 * claimOnce: move a document from one state to another exactly once.
 *
 * The race it closes (seed 002, payments): "read the order, check `isPaid`, then update" lets
 * two concurrent webhook deliveries both see `isPaid: false` and both fulfil the order. Here
 * the state check and the state change are one conditional update, so of N concurrent claims
 * exactly one matches and wins; the others learn why they lost from one read.
 */
import type { ClientSession, Collection, Document, Filter, WithId } from 'mongodb';
import { holdsExpression, readWithVerdicts } from './failure-read.js';
import {
  type AlreadyApplied,
  assertNoOverlap,
  guarded,
  type IfOpId,
  OP_ID_OPTIONS,
  type OpIdOptions,
  opGuard,
  opQuestion,
} from './op-log.js';
import type { CheckedPath, ScalarAt, ScalarPath } from './paths.js';
import { validator } from './validate.js';
import { sameScalar } from './values.js';

/**
 * Options of claimOnce.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TField - the state field's path, inferred from `field` and checked against the
 *   schema's scalar paths: it types `to` and `from`.
 */
export interface ClaimOnceOptions<
  TSchema extends Document = Document,
  TField extends string = ScalarPath<TSchema>,
  TOpId extends string | undefined = string | undefined,
> extends OpIdOptions<TOpId> {
  /** Identifies the document to claim, e.g. `{ _id: orderId }`. */
  readonly filter: Filter<TSchema>;
  /**
   * The field that records the state, e.g. `'status'` or `'payment.state'`. With a typed
   * collection, only dotted paths of the schema that hold a scalar (string, number, boolean,
   * Date, ObjectId, …) compile (see ScalarPath); with `Collection<Document>`, any string. A
   * value typed `string` is checked at run time only (and `to`/`from` are then any scalar).
   */
  readonly field: CheckedPath<TField, ScalarPath<TSchema>>;
  /**
   * The state the claim writes, e.g. `'paid'`: a scalar of the field's own type (with a typed
   * collection: `'paid'` for a `status: 'pending' | 'paid'` field, not `'payed'`).
   */
  readonly to: ScalarAt<TSchema, TField>;
  /**
   * The state(s) the field must hold for the claim to apply, of the field's own type. `null` in
   * the list also accepts a missing field.
   * @default anything other than `to`, including a missing field
   */
  readonly from?:
    | ScalarAt<TSchema, TField>
    | null
    | readonly (ScalarAt<TSchema, TField> | null)[]
    | undefined;
  /**
   * Extra fields written together with the claim, e.g. `{ paidAt: new Date(), paymentId }`.
   * Values are stored as given; functions, Symbols, invalid Dates and class instances that are
   * not BSON values (which the driver would drop or mangle) and keys named `__proto__`,
   * `constructor` or `prototype` at any depth are refused.
   */
  readonly set?: Readonly<Record<string, unknown>>;
  /** An extra condition that must also hold, e.g. `{ isPaid: true }` before finalizing. */
  readonly requires?: Filter<TSchema>;
  /**
   * Run inside the caller's session or transaction (a session of the collection's own
   * MongoClient). `undefined` runs without one.
   */
  readonly session?: ClientSession | undefined;
}

/**
 * What claimOnce did, told by `outcome` (with `opId`, also `alreadyApplied`: see
 * AlreadyApplied). Fields a branch lacks are typed `?: never`, so destructuring narrows.
 */
export type ClaimOnceResult<TSchema extends Document = Document> =
  | {
      /** This call moved the document's state field to `to`. */
      readonly outcome: 'claimed';
      /** The document as it is after the claim. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** The field already equals `to` (someone else claimed it); nothing changed. */
      readonly outcome: 'alreadyClaimed';
      /** The document as read. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** The field holds a state not in `from`, or `requires` does not hold; nothing changed. */
      readonly outcome: 'preconditionFailed';
      /** The document as read: what blocked the claim. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** No document matches `filter`; nothing changed. */
      readonly outcome: 'notFound';
      /** Absent: there is no document. */
      readonly document?: never;
    };

const OPTIONS = [
  'filter',
  'field',
  'to',
  'from',
  'set',
  'requires',
  'session',
  ...OP_ID_OPTIONS,
] as const;

/**
 * Moves one document's state field to `to` exactly once, however many callers race.
 *
 * - **Guard**: `filter` AND `field` ∈ `from` (default: `field` ≠ `to`, missing included) AND
 *   `requires`.
 * - **Update**: `$set` of `field: to` plus `set`, in the same single-document update.
 * - **Atomic**: the guard and the update are one `findOneAndUpdate`; of N concurrent claims on
 *   one document exactly one matches.
 * - **Round trips**: success: 1 (`findAndModify`). Failure: 2, the second a `find` that tells
 *   `alreadyClaimed` (field equals `to`, which wins over a failed `requires`),
 *   `preconditionFailed` and `notFound` apart. That read is informational: the document may
 *   change right after it.
 * - **`opId`**: also guarded by "this id not yet applied" and records it in the same update; a
 *   repeat resolves `alreadyApplied` (checked first on the failure read). See OpIdOptions.
 * - Works on a standalone server; joins the caller's transaction through `session`.
 *
 * @example
 * ```ts
 * interface Order {
 *   _id: string;
 *   status: 'pending' | 'paid' | 'cancelled';
 *   paidAt?: Date;
 *   paymentId?: string;
 * }
 * const orders = db.collection<Order>('orders');
 *
 * const result = await claimOnce(orders, {
 *   filter: { _id: orderId },
 *   field: 'status',
 *   from: 'pending',
 *   to: 'paid',
 *   set: { paidAt: new Date(), paymentId },
 * });
 * if (result.outcome === 'alreadyClaimed') return res.status(200).send('already processed');
 * if (result.outcome === 'preconditionFailed') return res.status(409).send(result.document.status);
 * ```
 */
export function claimOnce<
  TSchema extends Document = Document,
  TField extends string = ScalarPath<TSchema>,
  TOpId extends string | undefined = undefined,
>(
  collection: Collection<TSchema>,
  options: ClaimOnceOptions<TSchema, TField, TOpId>,
): Promise<ClaimOnceResult<TSchema> | IfOpId<TOpId, AlreadyApplied<TSchema>>>;
export async function claimOnce<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: ClaimOnceOptions<TSchema>,
): Promise<ClaimOnceResult<TSchema> | AlreadyApplied<TSchema>> {
  const v = validator('claimOnce');
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, OPTIONS);
  const filter = v.filter(options.filter);
  const field = v.writablePath(options.field, 'field');
  const to = v.scalar(options.to, 'to');
  let from: unknown[] | undefined;
  if (options.from !== undefined) {
    const list: readonly unknown[] = Array.isArray(options.from) ? options.from : [options.from];
    if (list.length === 0) v.fail('from', 'must list at least one state');
    list.forEach((state, i) => {
      if (state !== null) v.scalar(state, Array.isArray(options.from) ? `from.${i}` : 'from');
      if (sameScalar(state, to)) v.fail('from', 'must not include the target state `to`');
    });
    from = [...list];
  }
  const set = options.set === undefined ? {} : v.storedFields(options.set, 'set');
  const setKeys = Object.keys(set);
  for (const key of setKeys) {
    v.writablePath(key, `set.${key}`);
    const clash = setKeys.find((other) => other !== key && other.startsWith(`${key}.`));
    if (clash !== undefined)
      v.fail(`set.${clash}`, `overlaps "${key}", also in set: set one of them`);
    if (key === field || key.startsWith(`${field}.`) || field.startsWith(`${key}.`)) {
      v.fail(
        `set.${key}`,
        `overlaps the state field "${field}", which the claim writes itself: remove it from set`,
      );
    }
  }
  const requires =
    options.requires === undefined ? undefined : v.filter(options.requires, 'requires');
  const session = v.session(options.session, collection);
  const op = opGuard(v, options);
  assertNoOverlap(v, op, field, 'field');
  for (const key of Object.keys(set)) assertNoOverlap(v, op, key, `set.${key}`);

  const stateGuard = from === undefined ? { [field]: { $ne: to } } : { [field]: { $in: from } };
  const write = guarded(
    op,
    { $and: [filter, stateGuard, ...(requires === undefined ? [] : [requires])] },
    { $set: { ...set, [field]: to } },
  );
  const sessionOption = session === undefined ? {} : { session };

  const claimed = await collection.findOneAndUpdate(write.filter as Filter<TSchema>, write.update, {
    returnDocument: 'after',
    ...sessionOption,
  });
  if (claimed !== null) return { outcome: 'claimed', document: claimed };

  // The server decides, with the collation its guard used (see failure-read.ts).
  const read = await readWithVerdicts(
    'claimOnce',
    collection,
    filter,
    { applied: opQuestion(op), claimed: holdsExpression(field, to) },
    session,
  );
  if (read === null) return { outcome: 'notFound' };
  const { document, verdicts } = read;
  if (verdicts.applied) return { outcome: 'alreadyApplied', document };
  if (verdicts.claimed) return { outcome: 'alreadyClaimed', document };
  return { outcome: 'preconditionFailed', document };
}
