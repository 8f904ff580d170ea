/**
 * Exactly-once operation ids, shared by every single-document primitive.
 *
 * Double clicks, two devices and client retries send the same logical request twice. With an
 * `opId`, a primitive applies at most once per document per id: the id is recorded in the
 * same atomic update that applies the operation, in a bounded list inside the document, and a
 * repeat finds it there and changes nothing (`alreadyApplied`). No extra round trip on the
 * success path: the guard is part of the update's filter (or, for pipeline updates, of the
 * pipeline's condition). A repeat is told apart in the same command where the primitive can
 * ask there (guardedDecrement, the capacity sets and applyProgress with an `_id` filter: see
 * failure-read.ts), else by the failure-path read the primitive already makes.
 *
 * The list keeps the newest `size` ids (`$push` with `$slice`): an id older than that is
 * forgotten and a replay of it would apply again. Size it above the number of operations a
 * document can receive while a client may still retry.
 */
import type { Document, WithId } from 'mongodb';
import { holdsExpression } from './failure-read.js';
import type { Validator } from './validate.js';

/** Where the applied ids are kept. */
export interface OpIdLogOptions {
  /**
   * The array field holding recent operation ids.
   * @default '_opIds'
   */
  readonly field?: string;
  /**
   * How many of the newest ids are kept.
   * @default 50
   */
  readonly size?: number;
}

/**
 * The options every single-document primitive accepts for exactly-once application.
 *
 * @typeParam TOpId - the type of `opId` in a call, inferred: when a call has no `opId` (or only
 *   `undefined`), its result type leaves out `alreadyApplied`.
 */
export interface OpIdOptions<TOpId extends string | undefined = string | undefined> {
  /**
   * A caller-chosen id of this logical operation (e.g. a request id or idempotency token).
   * The operation applies at most once per document per id; a repeat resolves
   * `alreadyApplied` and changes nothing. `undefined` is the same as leaving it out (the
   * call's result type then still admits `alreadyApplied` when the value's type is
   * `string | undefined`).
   */
  readonly opId?: TOpId;
  /** Where and how many ids are kept. @default { field: '_opIds', size: 50 } */
  readonly opIdLog?: OpIdLogOptions | undefined;
}

/** A repeat of an operation id: nothing changed. `document` is as read. */
export interface AlreadyApplied<TSchema extends Document> {
  /** The document's op log already holds this call's `opId`: nothing changed. */
  readonly outcome: 'alreadyApplied';
  /** The document as read (its current state, not as the first application left it). */
  readonly document: WithId<TSchema>;
}

/**
 * `T` when a call's `opId` (of type `TOpId`) may be a string, else `never`: the primitives add
 * `AlreadyApplied` to their result type with it.
 */
export type IfOpId<TOpId, T> = [TOpId] extends [undefined] ? never : T;

/** Options that carry an `opId`: the call may resolve `alreadyApplied`. */
export type WithOpId<O> = O & {
  /** The id of this logical operation: it applies at most once per document. */
  readonly opId: string;
};
/** Options without an `opId`: the call never resolves `alreadyApplied`. */
export type WithoutOpId<O> = O & {
  /** Left out (or `undefined`): no exactly-once guard. */
  readonly opId?: undefined;
};

export const OP_ID_OPTIONS = ['opId', 'opIdLog'] as const;
const DEFAULT_OP_ID_LOG = { field: '_opIds', size: 50 } as const;

/** A validated op id guard. */
export interface OpGuard {
  readonly opId: string;
  readonly field: string;
  readonly size: number;
}

/** Validates `opId`/`opIdLog`; undefined when no `opId` was given. */
export function opGuard(v: Validator, options: OpIdOptions): OpGuard | undefined {
  if (options.opIdLog !== undefined) {
    v.fields(options.opIdLog, 'opIdLog');
    v.knownKeys(options.opIdLog, ['field', 'size'], 'opIdLog');
  }
  if (options.opId === undefined) {
    if (options.opIdLog !== undefined) v.fail('opIdLog', 'is only meaningful with "opId"');
    return undefined;
  }
  if (typeof options.opId !== 'string' || options.opId.length === 0 || options.opId.length > 200) {
    v.fail('opId', 'must be a non-empty string of at most 200 characters');
  }
  const field =
    options.opIdLog?.field === undefined
      ? DEFAULT_OP_ID_LOG.field
      : v.path(options.opIdLog.field, 'opIdLog.field');
  const size =
    options.opIdLog?.size === undefined
      ? DEFAULT_OP_ID_LOG.size
      : v.integer(options.opIdLog.size, 'opIdLog.size', 1);
  return { opId: options.opId, field, size };
}

/** Fails when a path the primitive writes overlaps the op id log field. */
export function assertNoOverlap(
  v: Validator,
  guard: OpGuard | undefined,
  path: string,
  option: string,
): void {
  if (guard === undefined) return;
  const f = guard.field;
  if (path === f || path.startsWith(`${f}.`) || f.startsWith(`${path}.`)) {
    v.fail(option, `overlaps the op id log field "${f}" (choose another opIdLog.field)`);
  }
}

/** The filter clause: only documents that have not seen this id. */
export function opFilter(guard: OpGuard): Document {
  return { [guard.field]: { $ne: guard.opId } };
}

/** The `$push` that records the id, keeping the newest `size`. */
function opPush(guard: OpGuard): Document {
  return { [guard.field]: { $each: [guard.opId], $slice: -guard.size } };
}

/**
 * Adds the guard to an operator update: `filter` AND not-seen, update plus the `$push`.
 * Without a guard, returns the inputs unchanged.
 */
export function guarded(
  guard: OpGuard | undefined,
  filter: Document,
  update: Document,
): { filter: Document; update: Document } {
  if (guard === undefined) return { filter, update };
  const push = { ...(update.$push as Document | undefined), ...opPush(guard) };
  return { filter: { $and: [filter, opFilter(guard)] }, update: { ...update, $push: push } };
}

/** Pipeline expression: has this document already seen the id? */
export function opSeenExpression(guard: OpGuard): Document {
  return { $in: [{ $literal: guard.opId }, { $ifNull: [`$${guard.field}`, []] }] };
}

/** Pipeline `$set` value recording the id (newest `size` kept). */
export function opRecordExpression(guard: OpGuard): Document {
  return {
    $slice: [
      { $concatArrays: [{ $ifNull: [`$${guard.field}`, []] }, [{ $literal: guard.opId }]] },
      -guard.size,
    ],
  };
}

/**
 * The failure read's question "has this document already recorded the id?", asked of the
 * server (see failure-read.ts): the exact negation of `opFilter`'s `$ne`, under the same
 * collation. Nothing is asked without a guard.
 */
export function opQuestion(guard: OpGuard | undefined): Document | undefined {
  return guard === undefined ? undefined : holdsExpression(guard.field, guard.opId);
}
