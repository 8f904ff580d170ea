/**
 * The read a primitive makes after its guarded update matched nothing, to tell the outcomes
 * apart (`notFound`, `alreadyApplied`, `alreadyClaimed`, `full`, …).
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
 * No extra round trip: it is the one `find` the failure path already made. Needs MongoDB 4.4+
 * (expressions in find projections).
 */
import type { ClientSession, Collection, Document, Filter, WithId } from 'mongodb';
import { primaryRead } from './driver.js';
import { MongoAtomicsError } from './errors.js';
import { isPlainObject } from './validate.js';

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
