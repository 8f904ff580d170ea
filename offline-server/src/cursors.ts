/**
 * Server-side cursors. Results are materialised when the cursor is opened (see README:
 * mongod yields and may see concurrent writes; this server returns the state as of the
 * opening command, which is one of the outcomes mongod allows for a non-snapshot read).
 */
import { calculateObjectSize, type Document, Long, type Timestamp } from 'bson';
import { ErrorCode, ServerError } from './errors.js';

/** mongod's default first batch: 101 documents (or 16 MiB). */
export const DEFAULT_FIRST_BATCH = 101;
const MAX_BATCH_BYTES = 16 * 1024 * 1024;

interface OpenCursor {
  readonly ns: string;
  readonly docs: Document[];
  position: number;
  /** Remaining documents allowed by `limit`. */
  remaining: number;
  /** A snapshot read's read timestamp, repeated in every batch (mongod's CursorResponse). */
  readonly atClusterTime: Timestamp | undefined;
}

function withAtClusterTime(reply: Document, cursor: OpenCursor): Document {
  if (cursor.atClusterTime !== undefined) reply.atClusterTime = cursor.atClusterTime;
  return reply;
}

export class CursorRegistry {
  private readonly cursors = new Map<string, OpenCursor>();

  /** Takes up to `batchSize` documents (and at most 16 MiB) starting at the cursor position. */
  private take(cursor: OpenCursor, batchSize: number | undefined): Document[] {
    const batch: Document[] = [];
    let bytes = 0;
    const limit = Math.min(batchSize ?? Number.POSITIVE_INFINITY, cursor.remaining);
    while (batch.length < limit && cursor.position < cursor.docs.length) {
      const doc = cursor.docs[cursor.position]!;
      bytes += calculateObjectSize(doc);
      if (batch.length > 0 && bytes > MAX_BATCH_BYTES) break;
      batch.push(doc);
      cursor.position += 1;
    }
    cursor.remaining -= batch.length;
    return batch;
  }

  private exhausted(cursor: OpenCursor): boolean {
    return cursor.position >= cursor.docs.length || cursor.remaining <= 0;
  }

  /** The `cursor` field of a find/aggregate/list* reply. */
  open(
    ns: string,
    docs: Document[],
    options: {
      batchSize?: number | undefined;
      limit?: number | undefined;
      singleBatch?: boolean | undefined;
      atClusterTime?: Timestamp | undefined;
    } = {},
  ): Document {
    const limit =
      options.limit !== undefined && options.limit > 0 ? options.limit : Number.POSITIVE_INFINITY;
    const cursor: OpenCursor = {
      ns,
      docs,
      position: 0,
      remaining: limit,
      atClusterTime: options.atClusterTime,
    };
    const batchSize = options.batchSize === undefined ? DEFAULT_FIRST_BATCH : options.batchSize;
    // batchSize 0 asks for an open cursor with an empty first batch.
    const firstBatch = batchSize === 0 ? [] : this.take(cursor, batchSize);
    if (options.singleBatch === true || this.exhausted(cursor)) {
      return withAtClusterTime({ firstBatch, id: Long.ZERO, ns }, cursor);
    }
    const id = this.newId();
    this.cursors.set(id.toString(), cursor);
    return withAtClusterTime({ firstBatch, id, ns }, cursor);
  }

  getMore(rawId: unknown, ns: string, batchSize: number | undefined): Document {
    const id = toLong(rawId);
    const cursor = this.cursors.get(id.toString());
    if (cursor === undefined || cursor.ns !== ns) {
      throw new ServerError(ErrorCode.CursorNotFound, `cursor id ${id.toString()} not found`);
    }
    const nextBatch = this.take(
      cursor,
      batchSize !== undefined && batchSize > 0 ? batchSize : undefined,
    );
    if (this.exhausted(cursor)) {
      this.cursors.delete(id.toString());
      return withAtClusterTime({ nextBatch, id: Long.ZERO, ns }, cursor);
    }
    return withAtClusterTime({ nextBatch, id, ns }, cursor);
  }

  kill(rawIds: readonly unknown[]): Document {
    const cursorsKilled: Long[] = [];
    const cursorsNotFound: Long[] = [];
    for (const id of rawIds.map(toLong)) {
      (this.cursors.delete(id.toString()) ? cursorsKilled : cursorsNotFound).push(id);
    }
    return { cursorsKilled, cursorsNotFound, cursorsAlive: [], cursorsUnknown: [] };
  }

  private newId(): Long {
    for (;;) {
      const id = Long.fromBits((Math.random() * 0x100000000) | 0, (Math.random() * 0x7fffffff) | 0);
      if (!id.isZero() && !id.isNegative() && !this.cursors.has(id.toString())) return id;
    }
  }
}

/** Cursor ids arrive as Long, or as a number when small enough for bson to promote them. */
function toLong(value: unknown): Long {
  if (value instanceof Long) return value;
  if (typeof value === 'number' && Number.isInteger(value)) return Long.fromNumber(value);
  throw new ServerError(ErrorCode.TypeMismatch, `cursor id must be a long, not ${typeof value}`);
}
