/**
 * How a primitive tells its failure outcomes apart (`notFound`, `insufficient`,
 * `alreadyApplied`, `alreadyClaimed`, `full`, …): `updateWithVerdicts` asks in the update's
 * own command (for a filter that selects at most one document by `_id`), `readWithVerdicts`
 * in a read made after a guarded update matched nothing.
 *
 * Every comparison that decides such an outcome is made by the SERVER, in the same read, as an
 * aggregation expression in the projection: "is this op id in the log", "does the state field
 * equal `to`", "is the member in the array". The server evaluates them with the collection's
 * default collation, exactly as it evaluated the update's guard. A client-side comparison would
 * be binary: under a case-insensitive collation the guard `{ _opIds: { $ne: 'req-1' } }` refuses
 * a document holding `'REQ-1'`, and a binary `includes` would then fail to see the id and report
 * the wrong outcome. Numbers are compared by the server too, so Decimal128 and double are
 * compared exactly (a JavaScript replay would round the decimal to a double first).
 *
 * `readWithVerdicts` is the failure path's second command (a `find`); `updateWithVerdicts`
 * needs none. Both need MongoDB 4.4+ (expressions in find and findAndModify projections).
 *
 * `updateWithVerdicts` serves guardedDecrement, addToSetWithCapacity and
 * removeFromSetWithCapacity (`_id` filters). applyProgress reports an op id repeat in its one
 * command too (`_id` filters), in its own pipeline: its `$set` must stay as it is, and the
 * `$mergeObjects` here would refuse a scalar parent that `$set` replaces. Primitives that do
 * not, and why (issue 11): claimOnce's `requires` is a query filter, which no aggregation
 * expression can evaluate (and `from` holding null matches a missing field in a query, not in
 * an expression); updateWithVersion writes the caller's operator update, which cannot be made
 * conditional in one command (operator updates have no condition, and not every one has a
 * pipeline form: positional `$`, `arrayFilters`, `$push` modifiers); guardedDecrementAll's
 * `update` command returns counts, not documents, so which item fell short still needs its
 * diagnosis.
 */
import type { ClientSession, Collection, Document, Filter, WithId } from 'mongodb';
import { primaryRead } from './driver.js';
import { MongoAtomicsError } from './errors.js';
import { isUnprojectedImage, projectRetryImage } from './retry-image.js';
import { isPlainObject } from './validate.js';
import { bsonType } from './values.js';

/** The document the filter selects, and the server's answer to each question asked. */
export interface Verdicts<TSchema extends Document, Q extends Questions> {
  readonly document: WithId<TSchema>;
  readonly verdicts: { readonly [K in keyof Q]: boolean };
}

/** Named boolean aggregation expressions; a key whose value is undefined is not asked. */
export type Questions = Readonly<Record<string, Document | undefined>>;

/**
 * Reads the document `filter` selects (from the primary, or in the session's transaction) with
 * the server's verdicts: each expression in `questions` is evaluated against that document and
 * must yield a boolean. `null` when nothing matches.
 *
 * `questions` keys are the library's own names, never a caller's: they become projection field
 * names.
 */
export async function readWithVerdicts<TSchema extends Document, Q extends Questions>(
  primitive: string,
  collection: Collection<TSchema>,
  filter: Document,
  questions: Q,
  session: ClientSession | undefined,
): Promise<Verdicts<TSchema, Q> | null> {
  const asked = Object.entries(questions).filter(([, expression]) => expression !== undefined);
  const reply = await collection.findOne<Document>(filter as Filter<TSchema>, {
    ...primaryRead(session),
    // One expression object, not a sub-projection: inside a find projection a nested
    // `{ name: { $slice: … } }` would be read as a projection operator, not an expression.
    projection: {
      _id: 0,
      document: '$$ROOT',
      verdicts: { $mergeObjects: [Object.fromEntries(asked)] },
    },
  });
  if (reply === null) return null;
  const { document, verdicts } = reply as { document?: unknown; verdicts?: unknown };
  if (
    !isPlainObject(document) ||
    !isPlainObject(verdicts) ||
    !asked.every(([key]) => Object.hasOwn(verdicts, key) && typeof verdicts[key] === 'boolean')
  ) {
    // A server before 4.4 refuses expressions in a find projection (its error passes through);
    // a reply without the verdicts asked for is no MongoDB reply to trust either.
    throw new MongoAtomicsError(
      `${primitive}: the server did not evaluate the find projection that tells the outcomes apart; nothing was changed. MongoDB 4.4 or later is required: upgrade the server`,
    );
  }
  return {
    document: document as WithId<TSchema>,
    verdicts: verdicts as { readonly [K in keyof Q]: boolean },
  };
}

/**
 * Expression mirroring the query `{ [path]: value }` for a scalar `value`: the field equals it,
 * or the field is an array with an element equal to it.
 */
export function holdsExpression(path: string, value: unknown): Document {
  const literal = { $literal: value };
  return {
    $or: [
      { $eq: [`$${path}`, literal] },
      // `$in` fails on a non-array operand: test the type first (`$cond`, not a `$and` that a
      // server might evaluate in full).
      { $cond: [{ $isArray: `$${path}` }, { $in: [literal, `$${path}`] }, false] },
    ],
  };
}

// =============================================================================================
// The failure verdict in the update's own command

/**
 * Does `filter` select at most one document whatever the collection holds? True when it has a
 * top-level `_id` equality: a value (not a regular expression, not an operator document) or
 * `{ $eq: value }`. `_id` is unique (its index uses the collection's default collation, the
 * one the query uses too), and further conditions beside it can only narrow the match.
 *
 * Only such filters may carry their guard in the update instead of in the filter (see
 * `updateWithVerdicts`): a filter that matches several documents relies on the guard in the
 * filter to pick one that passes it.
 */
export function selectsOneDocument(filter: Document): boolean {
  if (!Object.hasOwn(filter, '_id')) return false;
  const id: unknown = filter._id;
  if (id instanceof RegExp || bsonType(id) === 'BSONRegExp') return false;
  if (!isPlainObject(id)) return true;
  const keys = Object.keys(id);
  if (keys.every((key) => !key.startsWith('$'))) return true;
  return keys.length === 1 && keys[0] === '$eq';
}

/** One value the update writes: the dotted path, and the aggregation expression of its value. */
export type Write = readonly [path: string, value: unknown];

/** What `updateWithVerdicts` sends and asks, before conditionalCommand builds it. */
export interface ConditionalUpdate<Q extends Questions> {
  /** Boolean expression over the document as it is: the update applies only when it holds. */
  readonly guard: Document;
  /** The values written when the guard holds (any order: see writtenDocument); paths must not overlap. */
  readonly writes: readonly Write[];
  /** Questions asked of the document when the guard fails (as in `readWithVerdicts`). */
  readonly questions: Q;
  /** Values of the document reported when the guard fails, each an expression (`'$stock'`). */
  readonly facts: Readonly<Record<string, unknown>>;
  /**
   * A key of `questions`: when the guard fails and that verdict is true, the whole document (as
   * it is) is returned too. Left out: it never is (a failure reports verdicts and facts only).
   */
  readonly documentWhen?: (keyof Q & string) | undefined;
}

/**
 * A ConditionalUpdate as `updateWithVerdicts` sends it (built by conditionalCommand): the
 * update pipeline and the projection, and what reading the reply needs. Neither the filter nor
 * the session is in it, so one command can serve every call with the same options (kept
 * frozen: see deepFreeze).
 */
export interface ConditionalCommand<Q extends Questions> {
  readonly update: readonly Document[];
  readonly projection: Document;
  /** The keys of the questions asked (those whose expression is not undefined). */
  readonly asked: readonly (keyof Q & string)[];
  /** `documentWhen`, when that question is asked. */
  readonly documentWhen: (keyof Q & string) | undefined;
  /** Whether a failure reports facts (a fact-less plan's failure carries none). */
  readonly hasFacts: boolean;
  /** The field of the `$set` form (one top-level write), else undefined. */
  readonly setField: string | undefined;
}

/** The answer of `updateWithVerdicts`; `null` when no document matches the filter. */
export type ConditionalOutcome<TSchema extends Document, Q extends Questions> =
  | {
      /** The guard held: the writes were applied. */
      readonly applied: true;
      /** The document as the update left it, computed by the server. */
      readonly document: WithId<TSchema>;
    }
  | {
      /** The guard failed: nothing was written (the command was a no-op). */
      readonly applied: false;
      /** The document as it is, exactly when the verdict named by `documentWhen` is true. */
      readonly document: WithId<TSchema> | undefined;
      readonly verdicts: { readonly [K in keyof Q]: boolean };
      /** The facts asked for; a fact whose path the document lacks is absent. */
      readonly facts: Readonly<Record<string, unknown>>;
    };

/**
 * The document with `writes` applied, as an expression: `$mergeObjects` of the document and of
 * the written values, nested along dotted paths (`a.b` becomes `{ a: { $mergeObjects: ['$a',
 * { b: … }] } }`). `$mergeObjects` keeps existing fields in place and appends new ones; the
 * writes are merged in the order MongoDB 5.0+ update operators (`$inc`, `$set`, `$push`) create
 * missing fields, by field name per level (bytewise), so a document that lacks some gets them
 * in the same order as from the operator update. Each parent on a written path must be a
 * document or missing (`$mergeObjects` fails on a scalar or an array, nothing written), which
 * is where `$set`/`$push` would fail too.
 */
export function writtenDocument(writes: readonly Write[]): Document {
  const ordered = writes.length > 1 ? [...writes].sort(([a], [b]) => comparePaths(a, b)) : writes;
  const merged = (prefix: string, entries: readonly Write[]): Document => {
    const groups = new Map<string, Write[]>();
    for (const [path, value] of entries) {
      const [head = '', ...rest] = path.split('.');
      const group = groups.get(head) ?? [];
      group.push([rest.join('.'), value]);
      groups.set(head, group);
    }
    return Object.fromEntries(
      [...groups].map(([head, group]) => {
        const [first] = group;
        if (group.length === 1 && first !== undefined && first[0] === '') return [head, first[1]];
        if (group.some(([rest]) => rest === '')) {
          throw new MongoAtomicsError(`internal: overlapping written paths at "${prefix}${head}"`);
        }
        return [head, { $mergeObjects: [`$${prefix}${head}`, merged(`${prefix}${head}.`, group)] }];
      }),
    );
  };
  return { $mergeObjects: ['$$ROOT', merged('', ordered)] };
}

/** Orders dotted paths segment by segment, each compared by its UTF-8 bytes. */
function comparePaths(a: string, b: string): number {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const order = Buffer.compare(Buffer.from(x[i] ?? ''), Buffer.from(y[i] ?? ''));
    if (order !== 0) return order;
  }
  return x.length - y.length;
}

/**
 * The document after the one top-level write of updateWithVerdicts' `$set` form: the
 * before-image the projection returned, with `path` holding the value the server computed
 * (where the field was, or appended as `$set` appends a new field). Undefined when the reply
 * lacks either. Copied, never assigned into: `path` names a field, not a prototype slot.
 */
function afterWrite(reply: Record<string, unknown>, path: string): unknown {
  const { before } = reply;
  if (!isPlainObject(before) || !Object.hasOwn(reply, 'value')) return undefined;
  return { ...before, [path]: reply.value };
}

/**
 * Builds the command of `plan` for updateWithVerdicts (see there). Not frozen: a primitive
 * that keeps it for later calls freezes it (deepFreeze).
 */
export function conditionalCommand<Q extends Questions>(
  plan: ConditionalUpdate<Q>,
): ConditionalCommand<Q> {
  const asked = Object.entries(plan.questions).filter(([, expression]) => expression !== undefined);
  const [only] = plan.writes;
  // One write to a top-level field (guardedDecrement's): `$set` of that field alone, to its
  // own value when the guard fails (a field the document lacks stays missing: `$set` of a
  // missing value adds nothing), and on success the projection returns the before-image with
  // the written value, which the client puts in place: a command a quarter smaller than the
  // `$replaceWith` of the whole document, evaluated without copying the document twice. Any
  // other writes: `$replaceWith` of writtenDocument. (A dotted path cannot take the `$set`
  // form: `$set` of `a.b` writes into every element when `a` is an array.)
  const single =
    plan.writes.length === 1 && only !== undefined && !only[0].includes('.') ? only : undefined;
  const whenAsked = plan.documentWhen === undefined ? undefined : plan.questions[plan.documentWhen];
  // The guard is evaluated once in the projection: each branch of the `$cond` builds the
  // answer of its outcome, told apart by their keys (`written` or `before` on success). Inside
  // an operator's arguments an object is an expression object, never a sub-projection (see
  // readWithVerdicts), so the branches need no wrapper. A failure leaves out what it has
  // nothing to say about (no questions, no facts, no document): the command is parsed and
  // evaluated on every call, and its size is what a failure costs.
  const failed: Document = {};
  if (whenAsked !== undefined) failed.document = { $cond: [whenAsked, '$$ROOT', '$$REMOVE'] };
  if (asked.length > 0) failed.verdicts = Object.fromEntries(asked);
  const hasFacts = Object.keys(plan.facts).length > 0;
  // Never an empty branch: it is told from success by its keys.
  if (hasFacts) failed.facts = plan.facts;
  else if (asked.length === 0 && whenAsked === undefined) failed.facts = { $literal: {} };
  let update: Document[];
  let succeeded: Document;
  if (single === undefined) {
    const written = writtenDocument(plan.writes);
    update = [{ $replaceWith: { $cond: [plan.guard, written, '$$ROOT'] } }];
    succeeded = { written };
  } else {
    const [path, value] = single;
    update = [{ $set: { [path]: { $cond: [plan.guard, value, `$${path}`] } } }];
    succeeded = { before: '$$ROOT', value };
  }
  const projection = { _id: 0, r: { $cond: [plan.guard, succeeded, failed] } };
  return {
    update,
    projection,
    asked: asked.map(([key]) => key as keyof Q & string),
    documentWhen: whenAsked === undefined ? undefined : plan.documentWhen,
    hasFacts,
    setField: single?.[0],
  };
}

/**
 * `value`, and every plain object and array in it, frozen: a command kept for later calls
 * (see ConditionalCommand) that anything wrote into would change those calls; frozen, the
 * write throws instead. Only for commands built from the library's own values: a caller's
 * object inside would be frozen too.
 */
export function deepFreeze<T>(value: T): T {
  if (
    typeof value === 'object' &&
    value !== null &&
    (Array.isArray(value) || isPlainObject(value))
  ) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * A guarded single-document update that reports why it did not apply IN THE SAME COMMAND, and
 * writes nothing when it does not.
 *
 * One `findAndModify`:
 * - `query`: `filter` alone (it selects at most one document: see `selectsOneDocument`);
 * - `update`: the pipeline `[{ $replaceWith: { $cond: [guard, <document with writes>,
 *   '$$ROOT'] } }]`; for one write to a top-level field, `[{ $set: { field: { $cond: [guard,
 *   <value>, '$field'] } } }]` (see conditionalCommand). When the guard fails the document is
 *   replaced by itself, or the field set to itself: mongod compares the result with the stored
 *   document byte for byte and, equal, treats the update as a no-op (`pipeline_executor.cpp`:
 *   "Check for noop", `originalDoc.binaryEqual(...)` → `ApplyResult::noopResult()`; the update
 *   stage then skips the storage write: no oplog entry, nModified 0, and no write to conflict
 *   with another transaction's);
 * - `new: false` with a projection that evaluates, over that same before-image, the guard, the
 *   document the update wrote (the same expression; in the `$set` form the before-image and
 *   the written value, put in place here), the questions and the facts. The server decides
 *   every outcome, with the collection's default collation and its own arithmetic, exactly as
 *   the update did; the client only reads the answers.
 *
 * When the driver retried the command (retryable writes) and mongod answered from the stored
 * image without applying the projection (see retry-image.ts), the same projection is
 * evaluated over that image by one `aggregate` (on this path only).
 *
 * Needs MongoDB 4.4+ (pipeline updates: 4.2; expressions in a findAndModify projection: 4.4).
 */
export async function updateWithVerdicts<TSchema extends Document, Q extends Questions>(
  primitive: string,
  collection: Collection<TSchema>,
  filter: Document,
  command: ConditionalCommand<Q>,
  session: ClientSession | undefined,
): Promise<ConditionalOutcome<TSchema, Q> | null> {
  const { update, projection, asked, documentWhen, hasFacts, setField } = command;
  const value = await collection.findOneAndUpdate(filter as Filter<TSchema>, update as Document[], {
    returnDocument: 'before',
    projection,
    ...(session === undefined ? {} : { session }),
  });
  if (value === null) return null;
  // A retried command is answered with the whole before-image, unprojected: the server
  // evaluates the same projection over it.
  const projected = isUnprojectedImage(value)
    ? await projectRetryImage(primitive, collection, value, projection, session)
    : value;
  const reply: unknown = projected.r;
  const refuse = (): never => {
    // A server before 4.4 refuses expressions in a findAndModify projection (its error passes
    // through); a reply without the answers asked for is no MongoDB reply to trust either.
    throw new MongoAtomicsError(
      `${primitive}: the server did not evaluate the findAndModify projection that tells the outcomes apart. MongoDB 4.4 or later is required: upgrade the server`,
    );
  };
  if (!isPlainObject(reply)) return refuse();
  if (setField === undefined ? Object.hasOwn(reply, 'written') : Object.hasOwn(reply, 'before')) {
    const document = setField === undefined ? reply.written : afterWrite(reply, setField);
    if (!isPlainObject(document)) return refuse();
    return { applied: true, document: document as WithId<TSchema> };
  }
  const document = Object.hasOwn(reply, 'document') ? reply.document : undefined;
  // A failure leaves out the questions or facts it was not asked for (see the projection).
  const verdicts = Object.hasOwn(reply, 'verdicts')
    ? reply.verdicts
    : asked.length > 0
      ? undefined
      : {};
  const facts = Object.hasOwn(reply, 'facts') ? reply.facts : hasFacts ? undefined : {};
  if (
    !isPlainObject(verdicts) ||
    !isPlainObject(facts) ||
    !asked.every((key) => Object.hasOwn(verdicts, key) && typeof verdicts[key] === 'boolean') ||
    // The document comes exactly when the `documentWhen` verdict is true.
    (document === undefined
      ? documentWhen !== undefined && verdicts[documentWhen] === true
      : documentWhen === undefined || verdicts[documentWhen] !== true || !isPlainObject(document))
  ) {
    return refuse();
  }
  return {
    applied: false,
    document: document as WithId<TSchema> | undefined,
    verdicts: verdicts as { readonly [K in keyof Q]: boolean },
    facts,
  };
}
