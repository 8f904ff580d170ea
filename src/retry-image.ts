/**
 * Reading the outcome of a `findAndModify` that the driver retried.
 *
 * When the driver retries a `findAndModify` (a network error after the server applied it, a
 * retryable write concern error), mongod does not run it again: it answers from the stored
 * pre- or post-image of the first execution, and does NOT apply `fields` (the projection).
 * Source: mongod `src/mongo/db/ops/write_ops_retryability.cpp`
 * (`parseOplogEntryForFindAndModify`: `value` is the image as stored, `lastErrorObject` is
 * `{ n: 1, updatedExisting: true }`), SERVER-44151. Primitives that read their outcome from a
 * computed projection get the whole document instead.
 *
 * The projection's facts are then computed by the SERVER, from that very image, with one
 * `aggregate` that evaluates the same projection over it. Recomputing them in JavaScript would
 * compare strings binary: under a collection's default collation (case-insensitive, say) the
 * server matched `'C1'` for `'c1'` while a JavaScript replay would not, and the caller would be
 * told the opposite of what was written. The aggregate runs on the same collection without a
 * `collation` option, so the collection's default collation applies exactly as it did to the
 * update, and numbers are added and compared by the server's own arithmetic.
 */
import type { ClientSession, Collection, Document } from 'mongodb';
import { primaryRead } from './driver.js';
import { MongoAtomicsError } from './errors.js';
import { isPlainObject } from './validate.js';

/**
 * Did `value` come back without its projection? Every projection these primitives send
 * excludes `_id`, and every stored document has an `_id`: a reply value that holds an `_id` is
 * the whole stored image a retried findAndModify answers with.
 */
export function isUnprojectedImage(value: Document): boolean {
  return Object.hasOwn(value, '_id');
}

/** The update applied, but what it did could not be read (see callers); never repeat blindly. */
export function outcomeUnreadable(primitive: string, what: string, cause?: unknown): never {
  throw new MongoAtomicsError(
    `${primitive}: the update was applied (a retried findAndModify was answered from the stored image, without the projection), but its outcome could not be read: ${what}. Do not repeat the call blindly (pass an opId to make repeats safe).`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Evaluates `projection` on the server over `image` (the unprojected answer to a retried
 * findAndModify) and returns the projected document, exactly as the findAndModify would have
 * returned it. One `aggregate` on `collection`, in `session`, from the primary:
 *
 * `[{ $match: { _id } }, { $limit: 1 }, { $replaceWith: { $literal: image } }, { $project }]`
 *
 * - The `$match` only provides one input document of this collection, so that the pipeline
 *   runs with the collection's default collation; `$replaceWith` then swaps it for the image
 *   (the document's current content, already updated, is never read).
 * - `$literal` keeps the image from being parsed as an expression: a stored string `'$price'`
 *   or a field named `$x` or `a.b` (stored by MongoDB 5.0+) is data, as it was in the update.
 * - The image is sent back as the driver deserialised it. With the driver's default
 *   promotion an int64 within ±2^53 comes back as a JavaScript number and goes out as an int32
 *   or a double: the server's results (sums, comparisons) have the same values, which the
 *   driver hands back as the same JavaScript numbers as the projection's would be.
 * - A retried findAndModify never happens inside a transaction (drivers do not retry writes
 *   there: `willRetryWrite` requires `!session.inTransaction()` in driver 6 and 7), so this
 *   read is a plain read of the primary, like the primitives' failure reads.
 *
 * Needs MongoDB 4.2+ (`$replaceWith`); the primitives need 4.4 anyway.
 *
 * @throws MongoAtomicsError (update applied, outcome unknown) when the document is gone by the
 *   time of the aggregate (deleted in between), or when the aggregate fails (its error is the
 *   `cause`; e.g. a network error, or an image within a few KiB of the 16 MiB document limit,
 *   which no longer fits in a command).
 */
export async function projectRetryImage<TSchema extends Document>(
  primitive: string,
  collection: Collection<TSchema>,
  image: Document,
  projection: Document,
  session: ClientSession | undefined,
): Promise<Document> {
  let projected: Document[];
  try {
    projected = await collection
      .aggregate<Document>(
        [
          { $match: { _id: image._id } },
          { $limit: 1 },
          { $replaceWith: { $literal: image } },
          { $project: projection },
        ],
        primaryRead(session),
      )
      .toArray();
  } catch (error) {
    return outcomeUnreadable(
      primitive,
      'the aggregate that evaluates it on the server failed',
      error,
    );
  }
  const [first] = projected;
  if (!isPlainObject(first)) {
    return outcomeUnreadable(
      primitive,
      'the document was deleted before the server could evaluate the outcome on its image',
    );
  }
  return first;
}
