/**
 * updateWithVersion: optimistic concurrency for updates no atomic operator can express.
 *
 * The race it closes (seed 001, gamification): "read the student, add a reward computed from
 * the due date and the clock, level up when xp crosses a threshold, `save()`" lets two
 * concurrent submissions both read xp 90 and both write their own total: one reward is lost.
 * `$inc` fixes a bare counter, not a rule that reads several fields and resets xp on a level-up.
 * Here each document carries a version number. The write applies only if the version is still
 * the one read, and bumps it in the same single-document update; the caller that lost the race
 * re-reads the document and computes again, after a backoff, within an attempt cap.
 */
import type { ClientSession, Collection, Document, Filter, UpdateFilter, WithId } from 'mongodb';
import { GiveUpReason, RetryBudgetExhaustedError } from './errors.js';
import { readWithVerdicts } from './failure-read.js';
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
} from './op-log.js';
import type { CheckedPath, NumericPath } from './paths.js';
import {
  backoffDelay,
  isAbortSignal,
  sleep,
  type TransactionBackoff,
  validateBackoff,
} from './transaction.js';
import { describe, isPlainObject, type Validator, validator } from './validate.js';
import { getField, numericValue } from './values.js';

const PRIMITIVE = 'updateWithVersion';

/**
 * A conflict means another writer committed between this call's read and its write, a window
 * of one round trip plus the callback. Under ordinary contention the second try succeeds; ten
 * tries with the default backoff wait at most ~0.37 s in all (full jitter: about half) before
 * reporting a document too hot for optimistic concurrency. Raise it towards the number of
 * writers that really race on one document.
 */
const DEFAULT_MAX_ATTEMPTS = 10;
const DEFAULT_VERSION_FIELD = 'version';

/**
 * The update operators the callback may return. Not `$setOnInsert` (there is no upsert, it
 * would silently do nothing) and no aggregation pipelines (the version bump is an operator).
 */
const UPDATE_OPERATORS = new Set([
  '$set',
  '$unset',
  '$inc',
  '$mul',
  '$min',
  '$max',
  '$rename',
  '$currentDate',
  '$push',
  '$addToSet',
  '$pull',
  '$pullAll',
  '$pop',
  '$bit',
]);

/** What the callback learns about the attempt it computes for. */
export interface VersionAttempt {
  /** 1-based; `attempt > 1` means an earlier computation lost the race and was discarded. */
  readonly attempt: number;
}

/** An attempt whose write found the document changed since it was read. */
export interface VersionConflict {
  /** The attempt that lost (1-based). */
  readonly attempt: number;
  /** The version it read and required; 0 when the document had no version field. */
  readonly expectedVersion: number;
}

/** Passed to `onConflict` before each backoff. */
export interface VersionConflictEvent extends VersionConflict {
  /** Milliseconds before the document is read again for attempt `attempt + 1`. */
  readonly delayMs: number;
}

/**
 * Options of updateWithVersion.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TVersion - the path in `versionField`, inferred and checked against the schema's
 *   numeric paths.
 */
export interface UpdateWithVersionOptions<
  TSchema extends Document = Document,
  TVersion extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = string | undefined,
> extends OpIdOptions<TOpId> {
  /** Selects the one document to update, e.g. `{ _id: studentId }`. Use a unique filter. */
  readonly filter: Filter<TSchema>;
  /**
   * Computes the update from the document as read: an operator update (`$set`, `$inc`,
   * `$push`, …) that does not touch `versionField` or the op id log, or `null` to change
   * nothing. Runs once per attempt, on the freshest document: keep it free of outside side
   * effects, or make them idempotent. An error it throws ends the call unchanged, nothing
   * written.
   */
  readonly update: (
    document: WithId<TSchema>,
    context: VersionAttempt,
  ) => UpdateFilter<TSchema> | null | Promise<UpdateFilter<TSchema> | null>;
  /**
   * The numeric version field. A document without it is at version 0 and gets version 1.
   * Every writer of the document must bump it (or only touch fields the callback never
   * computes from), or its change goes unnoticed. With a typed collection, only dotted paths
   * of the schema that hold a number compile (see NumericPath); with `Collection<Document>`,
   * any string; a value typed `string` is checked at run time only.
   * @default 'version'
   */
  readonly versionField?: CheckedPath<TVersion, NumericPath<TSchema>> | undefined;
  /** Most attempts, the first included (an integer ≥ 1). @default 10 */
  readonly maxAttempts?: number;
  /**
   * Delay before re-reading after a conflict: as withRetryingTransaction's.
   * @default { initialDelayMs: 5, factor: 1.5, maxDelayMs: 500, jitter: 'full' }
   */
  readonly backoff?: TransactionBackoff;
  /**
   * Called before each backoff, awaited. The library never logs: this is where to. An error it
   * throws ends the call with that error.
   */
  readonly onConflict?: (event: VersionConflictEvent) => void | Promise<void>;
  /** Cancels the call: checked before the first read and before each write, and ends a backoff. */
  readonly signal?: AbortSignal;
  /**
   * Run inside the caller's session or transaction (of the collection's own MongoClient; see
   * the contract). `undefined` runs without one.
   */
  readonly session?: ClientSession | undefined;
}

/**
 * What updateWithVersion did, told by `outcome` (with `opId`, also `alreadyApplied`: see
 * AlreadyApplied). Fields a branch lacks are typed `?: never`, so destructuring narrows.
 */
export type UpdateWithVersionResult<TSchema extends Document = Document> =
  | {
      /** Written, with the version field advanced. */
      readonly outcome: 'updated';
      /** The document as it is after the write. */
      readonly document: WithId<TSchema>;
      /** The try that wrote it, from 1 (1 + the version conflicts met). */
      readonly attempts: number;
    }
  | {
      /** The callback returned `null`: nothing written. */
      readonly outcome: 'skipped';
      /** The document as the callback saw it. */
      readonly document: WithId<TSchema>;
      /** The try whose callback returned `null`, from 1. */
      readonly attempts: number;
    }
  | {
      /** No document matches `filter` (on the first read, or it was deleted during the retries). */
      readonly outcome: 'notFound';
      /** Absent: there is no document. */
      readonly document?: never;
      /** Absent on this outcome. */
      readonly attempts?: never;
    };

const OPTIONS = [
  'filter',
  'update',
  'versionField',
  'maxAttempts',
  'backoff',
  'onConflict',
  'signal',
  'session',
  ...OP_ID_OPTIONS,
] as const;

type UpdateFn<TSchema extends Document> = UpdateWithVersionOptions<TSchema>['update'];

interface Settings<TSchema extends Document> {
  readonly filter: Document;
  readonly update: UpdateFn<TSchema>;
  readonly versionField: string;
  readonly maxAttempts: number;
  readonly backoff: Required<TransactionBackoff>;
  readonly onConflict: ((event: VersionConflictEvent) => void | Promise<void>) | undefined;
  readonly signal: AbortSignal | undefined;
  readonly session: ClientSession | undefined;
  readonly op: OpGuard | undefined;
}

/** `a` and `b` name the same field, or one lies inside the other. */
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

function validate<TSchema extends Document>(
  v: Validator,
  collection: Collection<TSchema>,
  options: UpdateWithVersionOptions<TSchema>,
): Settings<TSchema> {
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, OPTIONS);
  const filter = v.filter(options.filter);
  const update = v.function(options.update, 'update');
  const versionField =
    options.versionField === undefined
      ? DEFAULT_VERSION_FIELD
      : v.writablePath(options.versionField, 'versionField');
  const maxAttempts =
    options.maxAttempts === undefined
      ? DEFAULT_MAX_ATTEMPTS
      : v.integer(options.maxAttempts, 'maxAttempts', 1);
  const backoff = validateBackoff(v, options.backoff);
  const onConflict =
    options.onConflict === undefined ? undefined : v.function(options.onConflict, 'onConflict');
  if (options.signal !== undefined && !isAbortSignal(options.signal)) {
    v.fail('signal', `must be an AbortSignal, got ${describe(options.signal)}`);
  }
  const session = v.session(options.session, collection);
  const op = opGuard(v, options);
  assertNoOverlap(v, op, versionField, 'versionField');
  return {
    filter,
    update,
    versionField,
    maxAttempts,
    backoff,
    onConflict,
    signal: options.signal,
    session,
    op,
  };
}

/**
 * Checks an operator update before anything is written: a plain object of known update
 * operators, each over an object of fields, BSON values only (`serialisable`), no field path
 * that reaches a prototype, none writing `_id` or the field the primitive writes itself
 * (`owned`). Throws InvalidArgumentError on option `update`. `verb` words the messages for a
 * value the caller returned (`'returned'`, updateWithVersion's callback) or passed (`'has'`).
 */
export function checkOperatorUpdate(
  v: Validator,
  value: unknown,
  spec: {
    readonly verb: 'returned' | 'has';
    /** What to do instead when `value` is not an operator update (appended to the message). */
    readonly hint: string;
    /** The same when `value` is an array (an aggregation pipeline). */
    readonly pipelineHint: string;
    /** The field the primitive writes itself, and what it calls it. */
    readonly owned: { readonly path: string; readonly name: string; readonly why: string };
    /** Further checks of each written path (e.g. the op id log). */
    readonly eachPath?: ((path: string) => void) | undefined;
  },
): Document {
  const { verb, owned } = spec;
  if (!isPlainObject(value)) {
    const hint = Array.isArray(value)
      ? `aggregation pipelines are not supported, ${spec.pipelineHint}`
      : spec.hint;
    return v.fail(
      'update',
      `${verb === 'returned' ? 'returned' : 'must be an operator update, got'} ${describe(value)}: ${hint}`,
    );
  }
  v.serialisable(value, 'update');
  const operators = Object.keys(value);
  if (operators.length === 0) {
    v.fail(
      'update',
      verb === 'returned'
        ? 'returned an empty update: return null to skip instead'
        : 'must not be empty',
    );
  }
  for (const operator of operators) {
    if (!operator.startsWith('$')) {
      v.fail(
        'update',
        `${verb} a field without an operator (${JSON.stringify(operator)}): replacement documents are not supported, use { $set: … }`,
      );
    }
    if (!UPDATE_OPERATORS.has(operator)) {
      v.fail('update', `${verb} an unknown update operator ${JSON.stringify(operator)}`);
    }
    const fields = value[operator];
    if (!isPlainObject(fields)) {
      v.fail(
        'update',
        `${verb} ${operator} with ${describe(fields)}; it takes an object of fields`,
      );
    }
    const written = Object.entries(fields as Document).flatMap(([path, target]) =>
      // $rename writes its target too.
      operator === '$rename' && typeof target === 'string' ? [path, target] : [path],
    );
    for (const path of written) {
      v.safeSegments(path, 'update');
      if (overlaps(path, '_id')) {
        v.fail(
          'update',
          `${verb} ${operator} on "${path}": MongoDB does not let an update change _id`,
        );
      }
      if (overlaps(path, owned.path)) {
        v.fail(
          'update',
          `${verb} ${operator} on "${path}", which overlaps the ${owned.name} "${owned.path}" (${owned.why})`,
        );
      }
      spec.eachPath?.(path);
    }
  }
  return value;
}

/**
 * Checks what the callback returned before anything is written (see checkOperatorUpdate): none
 * of its paths may be `_id`, the version field or the op id log, which this primitive writes
 * itself.
 */
function checkUpdate(
  v: Validator,
  value: unknown,
  versionField: string,
  op: OpGuard | undefined,
): Document {
  return checkOperatorUpdate(v, value, {
    verb: 'returned',
    hint: 'return an operator update such as { $set: … }, or null to skip',
    pipelineHint: 'return operators such as { $set: … }',
    owned: { path: versionField, name: 'version field', why: 'updateWithVersion bumps it itself' },
    eachPath: (path) => assertNoOverlap(v, op, path, 'update'),
  });
}

/**
 * The document's version as a guard value (as stored, so a Long compares exactly) and as a
 * number for reports; `undefined` stored value: the field is missing (version 0).
 */
function versionOf(
  v: Validator,
  doc: Document,
  versionField: string,
): { readonly stored: unknown; readonly number: number } {
  const stored = getField(doc, versionField);
  if (stored === undefined) return { stored, number: 0 };
  const number = numericValue(stored);
  if (number === undefined || !Number.isFinite(number)) {
    return v.fail(
      'versionField',
      `holds ${describe(stored)} in the matched document; a version must be a number (or missing)`,
    );
  }
  return { stored, number };
}

/**
 * Reads a document, lets `options.update` compute an update from it, and writes that update
 * only if the document's version is still the one read, bumping the version; on a conflict it
 * reads again and recomputes, after a backoff, within `maxAttempts`.
 *
 * - **Read**: `findOne(filter)`, then `update(document, { attempt })`. `null` → `skipped`,
 *   nothing written. The returned update is checked before writing (known operators only,
 *   nothing on `versionField`, the op id log or `_id`): InvalidArgumentError on option
 *   `update` otherwise, with nothing written.
 * - **Guard**: `filter` AND `_id` = the read document's AND `versionField` = the version read
 *   (`{ $exists: false }` when the field was missing) [AND `opId` not yet applied].
 * - **Update**: the callback's operators plus `$inc: { [versionField]: 1 }` (a missing field
 *   becomes 1) [plus the `$push` recording `opId`], `returnDocument: 'after'`.
 * - **Atomic**: guard and update are one `findOneAndUpdate`: the update applies to exactly the
 *   version the callback computed from, or not at all. No match is a conflict (or a deletion):
 *   after a backoff the document is read again; gone → `notFound`, else the next attempt.
 * - **Round trips**: success on attempt k: 2k (`find`, `findAndModify` per attempt): 2 without
 *   contention, each conflict adds 2. `skipped` on attempt k: 2k − 1. `notFound` or a repeated
 *   `opId` seen on the first read: 1. Giving up: 2 × maxAttempts + 1 (a last read tells a
 *   conflict from a deletion or from the same `opId` applied by a concurrent repeat).
 * - **Gives up** with RetryBudgetExhaustedError (reason `maxAttempts`, `attempts` =
 *   maxAttempts, `cause`: an Error describing the last conflict, with the VersionConflict's
 *   `attempt` and `expectedVersion`) when every attempt lost its race.
 * - **`opId`**: a document that already recorded the id resolves `alreadyApplied` on any read,
 *   the first included, so the callback does not even run for a repeat.
 * - **Sessions and transactions**: with a `session` outside a transaction, as above. Inside a
 *   transaction, the read and the write see the transaction's snapshot, so another client's
 *   change cannot show up as a version mismatch: the server fails the write with WriteConflict
 *   (112, TransientTransactionError) and aborts the transaction. That error is rethrown
 *   unchanged, never retried here: a re-read in the same transaction sees the same snapshot,
 *   and only a new transaction sees the newer version. Retrying belongs to the transaction
 *   runner (withRetryingTransaction, `session.withTransaction`), which re-runs this call and
 *   with it the callback (its `attempt` starts at 1 again). A mismatch inside a transaction can
 *   only come from the transaction's own writes to the document; the re-read sees them and the
 *   loop proceeds as outside one.
 * - Works on a standalone server.
 *
 * @example
 * ```ts
 * interface Student { _id: string; xp: number; level: number; version: number }
 * const students = db.collection<Student>('students');
 *
 * const result = await updateWithVersion(students, {
 *   filter: { _id: studentId },
 *   update: (student) => {
 *     const xp = student.xp + reward(assignment.dueDate, Date.now());
 *     const next = 100 * (student.level + 1) ** 2;
 *     return xp >= next ? { $set: { xp: 0 }, $inc: { level: 1 } } : { $set: { xp } };
 *   },
 *   opId: submissionId,
 * });
 * if (result.outcome === 'notFound') return res.status(404).end();
 * if (result.outcome === 'updated') res.json({ level: result.document.level });
 * ```
 *
 * @throws InvalidArgumentError for invalid options (nothing sent), for an invalid update
 *   returned by the callback or a non-numeric version field (only reads sent).
 * @throws RetryBudgetExhaustedError (reason `maxAttempts`) as above.
 * @throws the callback's error, the `onConflict` hook's error and `signal.reason`, unchanged;
 *   driver and server errors (WriteConflict in a transaction included), unchanged.
 */
export function updateWithVersion<
  TSchema extends Document = Document,
  TVersion extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = undefined,
>(
  collection: Collection<TSchema>,
  options: UpdateWithVersionOptions<TSchema, TVersion, TOpId>,
): Promise<UpdateWithVersionResult<TSchema> | IfOpId<TOpId, AlreadyApplied<TSchema>>>;
export async function updateWithVersion<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: UpdateWithVersionOptions<TSchema>,
): Promise<UpdateWithVersionResult<TSchema> | AlreadyApplied<TSchema>> {
  const v = validator(PRIMITIVE);
  const s = validate(v, collection, options);
  const { signal, op, versionField } = s;
  if (signal?.aborted) throw signal.reason;

  const started = performance.now();
  const sessionOption = s.session === undefined ? {} : { session: s.session };
  // From the primary: a stale secondary would hand the callback an old version, whose write
  // could only conflict (or report notFound for a document just inserted).
  // The server tells whether the op id is recorded, under the collation the write's guard uses.
  const read = () =>
    readWithVerdicts(PRIMITIVE, collection, s.filter, { applied: opQuestion(op) }, s.session);

  let latest = await read();
  let conflict: VersionConflict | undefined;
  for (let attempt = 1; ; attempt += 1) {
    if (latest === null) return { outcome: 'notFound' };
    const current = latest.document;
    if (latest.verdicts.applied) return { outcome: 'alreadyApplied', document: current };
    const version = versionOf(v, current, versionField);
    if (conflict !== undefined && conflict.attempt >= s.maxAttempts) {
      throw new RetryBudgetExhaustedError(
        `${PRIMITIVE}: gave up after ${conflict.attempt} attempt(s) (maxAttempts): the document changed between every read and write (last read version ${conflict.expectedVersion}, now ${version.number}); nothing was written. Raise maxAttempts, or call again when fewer writers update this document`,
        {
          reason: GiveUpReason.MaxAttempts,
          attempts: conflict.attempt,
          elapsedMs: Math.round(performance.now() - started),
          // An Error (as every RetryBudgetExhaustedError cause) carrying the VersionConflict.
          cause: Object.assign(
            new Error(
              `attempt ${conflict.attempt} required version ${conflict.expectedVersion}, but the document had changed`,
            ),
            conflict,
          ),
        },
      );
    }

    const computed = await s.update(current, { attempt });
    if (computed === null) return { outcome: 'skipped', document: current, attempts: attempt };
    const update = checkUpdate(v, computed, versionField, op);
    // A cancelled call must not write: whatever the callback computed is abandoned.
    if (signal?.aborted) throw signal.reason;

    const versionGuard = { [versionField]: version.stored ?? { $exists: false } };
    const inc = { ...(update.$inc as Document | undefined), [versionField]: 1 };
    const write = guarded(
      op,
      { $and: [s.filter, { _id: current._id }, versionGuard] },
      { ...update, $inc: inc },
    );
    const written = await collection.findOneAndUpdate(
      write.filter as Filter<TSchema>,
      write.update,
      {
        returnDocument: 'after',
        ...sessionOption,
      },
    );
    if (written !== null) return { outcome: 'updated', document: written, attempts: attempt };

    conflict = { attempt, expectedVersion: version.number };
    if (attempt < s.maxAttempts) {
      // Wait BEFORE reading again: a read taken before the wait would be stale after it.
      const delayMs = backoffDelay(s.backoff, attempt);
      await s.onConflict?.({ ...conflict, delayMs });
      await sleep(delayMs, signal);
    }
    latest = await read();
  }
}
