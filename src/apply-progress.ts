/**
 * `applyProgress`: award points and derive levels and badges in one atomic update.
 *
 * The race it closes (seed 001, gamification): "read the student, add the XP in JS, check the
 * level threshold, add a badge, then `save()`" lets two concurrent awards both read XP 90, both
 * write 90 + award (one award is lost), and both see the threshold crossed, so both congratulate
 * the student on reaching the same level (and both run whatever a level-up triggers). Here the
 * counters, the level and the badges are computed by the server inside one single-document
 * update, and what each call earned is computed from the same pre-image in the same command: of
 * N concurrent awards, every point counts, and each level and each badge is reported as earned
 * by exactly one of them.
 */
import type { ClientSession, Collection, Document, Filter, WithId } from 'mongodb';
import { MongoAtomicsError } from './errors.js';
import { readWithVerdicts, selectsOneDocument } from './failure-read.js';
import {
  type AlreadyApplied,
  assertNoOverlap,
  OP_ID_OPTIONS,
  type OpGuard,
  type OpIdOptions,
  opFilter,
  opGuard,
  opQuestion,
  opRecordExpression,
} from './op-log.js';
import type { ArrayPath, CheckedPath, NumericPath, PathRecord } from './paths.js';
import { isUnprojectedImage, projectRetryImage } from './retry-image.js';
import { describe, isPlainObject, MAX_NAME_LENGTH, validator } from './validate.js';
import { getField, numericValue } from './values.js';

const PRIMITIVE = 'applyProgress';

/**
 * Levels derived from one counter.
 *
 * @typeParam TSchema - the collection's schema: with a typed one, `field` and `counter` must be
 *   dotted paths of it that hold a number (see NumericPath); with `Document`, any string. A
 *   value typed `string` is checked at run time only.
 * @typeParam TField - the path in `field`, inferred from the call.
 * @typeParam TCounter - the path in `counter`, inferred from the call.
 */
export interface ProgressLevels<
  TSchema extends Document = Document,
  TField extends string = NumericPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
> {
  /** Where the level is stored, e.g. `'level'` or `'progress.level'`: a numeric path. */
  readonly field: CheckedPath<TField, NumericPath<TSchema>>;
  /**
   * The counter the level follows, e.g. `'xp'`: a key of `inc` (its value after this call's
   * increment counts) or any other numeric field (its current value counts). A numeric path.
   */
  readonly counter: CheckedPath<TCounter, NumericPath<TSchema>>;
  /**
   * Cumulative thresholds, non-decreasing and finite, at least one: level `n` is reached when
   * the counter is ≥ `thresholds[n - 1]`, level 0 is below the first. The level never goes
   * past `thresholds.length`: list as many levels as you need. For "level L needs
   * 100·(L+1)² XP, counted from the last level-up" use the running sums,
   * `[100, 500, 1400, 3000, 5500, …]` (see the guide).
   */
  readonly thresholds: readonly number[];
}

/**
 * One badge rule: `badge` is earned once `counter` ≥ `atLeast`.
 *
 * @typeParam TSchema - the collection's schema: with a typed one, `counter` must be a dotted
 *   path of it that holds a number (see NumericPath); with `Document`, any string. A value
 *   typed `string` is checked at run time only.
 * @typeParam TCounter - the path(s) in `counter`, inferred from the call.
 */
export interface BadgeRule<
  TSchema extends Document = Document,
  TCounter extends string = NumericPath<TSchema>,
> {
  /** The badge's name as stored in the badges array, e.g. `'ten-submissions'`. Unique. */
  readonly badge: string;
  /**
   * A key of `inc` (value after this call) or any other numeric field (current value): a
   * numeric path.
   */
  readonly counter: CheckedPath<TCounter, NumericPath<TSchema>>;
  /** The threshold (finite). */
  readonly atLeast: number;
}

/**
 * Badges derived from counters, kept as a set in an array field.
 *
 * @typeParam TSchema - the collection's schema: with a typed one, `field` must be a dotted path
 *   of it that holds an array (see ArrayPath); with `Document`, any string. A value typed
 *   `string` is checked at run time only.
 * @typeParam TField - the path in `field`, inferred from the call.
 * @typeParam TCounter - the rules' counter paths, inferred from the call.
 */
export interface ProgressBadges<
  TSchema extends Document = Document,
  TField extends string = ArrayPath<TSchema>,
  TCounter extends string = NumericPath<TSchema>,
> {
  /**
   * The array of earned badge names, e.g. `'badges'`: an array path. A missing or null field
   * counts as `[]`.
   */
  readonly field: CheckedPath<TField, ArrayPath<TSchema>>;
  /** The rules; at least one, with distinct `badge` names. */
  readonly rules: readonly BadgeRule<TSchema, TCounter>[];
}

/**
 * Options of applyProgress.
 *
 * @typeParam TSchema - the collection's schema.
 * @typeParam TLevelField - the path in `level.field`, inferred from the call.
 * @typeParam TLevelCounter - the path in `level.counter`, inferred from the call.
 * @typeParam TBadgesField - the path in `badges.field`, inferred from the call.
 * @typeParam TBadgeCounter - the paths in `badges.rules[].counter`, inferred from the call.
 */
export interface ApplyProgressOptions<
  TSchema extends Document = Document,
  TLevelField extends string = NumericPath<TSchema>,
  TLevelCounter extends string = NumericPath<TSchema>,
  TBadgesField extends string = ArrayPath<TSchema>,
  TBadgeCounter extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = string | undefined,
> extends OpIdOptions<TOpId> {
  /** Selects the one document (player, student) to award, e.g. `{ _id: studentId }`. */
  readonly filter: Filter<TSchema>;
  /**
   * The counters to add to and by how much (finite numbers greater than 0), e.g.
   * `{ xp: 40, auraPoints: 40, submissions: 1 }`. Dotted paths are allowed
   * (`'stats.submissions'`). A missing or null counter counts from 0. Not empty. With a typed
   * collection, only dotted paths of the schema that hold a number are keys (see NumericPath);
   * with `Collection<Document>`, any string.
   */
  readonly inc: PathRecord<NumericPath<TSchema>, number>;
  /** Derive a level from a counter. The stored level never decreases. */
  readonly level?: ProgressLevels<TSchema, TLevelField, TLevelCounter> | undefined;
  /** Derive badges from counters. Badges are only ever added. */
  readonly badges?: ProgressBadges<TSchema, TBadgesField, TBadgeCounter> | undefined;
  /**
   * Runs the update (and the failure read) in this session, and in its transaction if one is
   * open. `undefined` runs without one.
   */
  readonly session?: ClientSession | undefined;
}

/** The call applied its increments. */
export interface ProgressApplied<TSchema extends Document = Document> {
  /** The increments (and any level and badges they earned) were written. */
  readonly outcome: 'applied';
  /** The document as this call left it (the counters, level, badges and op log it wrote). */
  readonly document: WithId<TSchema>;
  /**
   * The levels THIS call reached, ascending, e.g. `[2, 3]` for a jump from level 1 to 3. Empty
   * when the level did not change or no `level` was given. Under concurrency, every level is
   * reported by exactly one call.
   */
  readonly levelsGained: number[];
  /**
   * The badges THIS call added, in rule order; badges the document already held are never
   * reported again. Under concurrency, every badge is reported by exactly one call.
   */
  readonly badgesEarned: string[];
}

/** No document matched `filter` when the update ran. Nothing changed. */
export interface ProgressNotFound {
  /** No document matched `filter`. */
  readonly outcome: 'notFound';
  /** Absent: there is no document. */
  readonly document?: never;
  /** Absent on this outcome. */
  readonly levelsGained?: never;
  /** Absent on this outcome. */
  readonly badgesEarned?: never;
}

/** What happened, for a call without `opId`: `applied` or `notFound`. */
export type ApplyProgressResult<TSchema extends Document = Document> =
  | ProgressApplied<TSchema>
  | ProgressNotFound;

/**
 * What happened, for a call that may carry an `opId`: also `alreadyApplied` (a repeat of the
 * id; nothing changed; `document` as read). Fields a branch lacks are typed `?: never`, so
 * destructuring narrows.
 */
export type ApplyProgressOnceResult<TSchema extends Document = Document> =
  | ApplyProgressResult<TSchema>
  | (AlreadyApplied<TSchema> & {
      /** Absent: a repeat gains no level. */
      readonly levelsGained?: never;
      /** Absent: a repeat earns no badge. */
      readonly badgesEarned?: never;
    });

const KNOWN_OPTIONS = ['filter', 'inc', 'level', 'badges', 'session', ...OP_ID_OPTIONS] as const;
const LEVEL_KEYS = ['field', 'counter', 'thresholds'] as const;
const BADGES_KEYS = ['field', 'rules'] as const;
const RULE_KEYS = ['badge', 'counter', 'atLeast'] as const;

/**
 * Adds to counters and derives the level and badges from them in one atomic update, reporting
 * exactly what this call earned.
 *
 * See the example below.
 *
 * **Guard**: `filter` (and, with `opId`, "this id is not in the op id log"). With `opId` and a
 * `filter` holding an `_id` equality (a value or `{ $eq: value }`, beside any other conditions),
 * the op id guard is checked inside the update instead of in the filter, so that a repeat is
 * told apart in the same command (below). Any other filter keeps it in the filter: a filter
 * that matches several documents must pick one that has not applied the op.
 *
 * **Update**: one `findAndModify` whose update is an aggregation pipeline `$set`, every
 * expression evaluated against the document as it was:
 * - each counter: `$add [ $ifNull [counter, 0], {$literal: inc} ]`;
 * - the level: `$max [ stored level (0 if missing or not a number), number of thresholds ≤
 *   the level counter ]`, so a level never goes down (a manually raised level is kept);
 * - the badges: the stored array followed by the badges whose rule now holds and that it does
 *   not hold yet, in rule order (existing badges keep their order; no duplicates are added);
 * - with `opId`, the op id log with the id appended (newest `opIdLog.size` kept).
 * Counters read by a rule that are not incremented count as 0 when missing or not a number.
 * Every caller string, document or array enters the pipeline through `$literal`, so a badge
 * named `'$xp'` is stored as that string, never evaluated (a number is a constant in any
 * expression and is sent as it is).
 *
 * **A repeat in one command** (`opId` with an `_id` filter): the same `$set` between two
 * `$replaceWith` stages. When the log already holds the id (the server decides, under the
 * collection's default collation, as it decides the filter's `$ne`), the first stage parks
 * the document in a wrapper without `_id`, the `$set` writes into the wrapper, and the last
 * stage takes the document back out; otherwise both stages pass the document through, and
 * the stored result is byte for byte what the one-stage `$set` stores. A repeat's result is
 * byte-identical to the stored document, which mongod treats as a no-op (pipeline_executor.cpp
 * "Check for noop"): no oplog entry, nothing for another transaction to conflict with. The
 * projection reports the repeat (`alreadyApplied`, the document as it is) instead of the facts,
 * which it then does not evaluate (a counter holding a string fails an award, not a repeat).
 *
 * **What this call earned**: the command returns the before-image through a projection that
 * evaluates the same expressions again (same pre-image, same command, same server
 * arithmetic): the previous and new level and the badges added. `document` is the before-image
 * with the values the update wrote put in place; nothing is recomputed on the client, not
 * even after a retry (below). Because each call's before→after is one step of the document's serial
 * history, the levels and badges reported by concurrent calls partition the document's gains
 * exactly: none twice, none lost.
 *
 * **Retried by the driver** (retryable writes: a network error or a retryable write concern
 * error after the server applied the award): mongod does not run the command again, it answers
 * from the stored before-image of the first execution and does not apply the projection
 * (write_ops_retryability.cpp, SERVER-44151). The award applied once. What it earned is then
 * evaluated by the server, not recomputed in JavaScript: one `aggregate` on the same collection
 * (same session, from the primary) applies the same projection to that image
 * (`$replaceWith: { $literal: image }`), so badges are compared with `$in` under the
 * collection's default collation and counters with the server's own arithmetic, exactly as
 * the update did: a held badge `'gold'` that the server counted as the rule's `'Gold'`
 * (case-insensitive collation) is not reported as earned again.
 *
 * **Field names**: `document` is rebuilt with defined own properties along own properties
 * only, so a stored field named `__proto__`, `constructor` or `prototype` stays a field and
 * never reaches a JavaScript prototype; a rule counter named like an inherited member
 * (`toString`) is the field of that name.
 *
 * **Atomic**: one single-document update; concurrent calls are serialised by the server.
 *
 * **Round trips**: success: 1 (`findAndModify`). `notFound` without `opId`: 1 (nothing else can
 * make the update match nothing). With `opId` and an `_id` filter, `alreadyApplied` (the
 * document as it is) and `notFound`: 1, the same `findAndModify`. With `opId` and any other
 * filter, a failed update is followed by one `find` that tells `alreadyApplied` (the document,
 * as read) from `notFound`: 2. When the driver retried the `findAndModify` and the answer is
 * the stored image, one `aggregate` more: 2 commands of this function (3 on the wire, with the
 * driver's retry). Invalid options throw `InvalidArgumentError` naming the option before
 * anything is sent.
 *
 * **Needs**: MongoDB 4.4+ (pipeline updates and `$replaceWith`: 4.2; expressions in a
 * findAndModify projection and `$isNumber`: 4.4). No replica set, unless `session` carries a transaction.
 *
 * **Limits**: paths must go through embedded documents (or missing fields), not arrays. A
 * counter holding a non-number makes `$add` fail (server error, nothing written). A stored
 * level that is not a number counts as 0 and is overwritten.
 *
 * @throws InvalidArgumentError for a bad argument (no command sent).
 * @throws the driver's error for server and network failures (e.g. a counter holding a string,
 *   or a badges field holding a non-array: nothing is written).
 * @throws MongoAtomicsError when the server did not evaluate the projection (before 4.4), or,
 *   on a retried command, when the outcome could not be read from the image (the document was
 *   deleted before the `aggregate` ran, or the `aggregate` failed: its error is the `cause`):
 *   the award was applied, so do not repeat it blindly.
 *
 * @example
 * ```ts
 * interface Student {
 *   _id: string;
 *   xp: number;
 *   auraPoints: number;
 *   submissions: number;
 *   level: number;
 *   badges: string[];
 * }
 * const students = db.collection<Student>('students');
 *
 * const result = await applyProgress(students, {
 *   filter: { _id: studentId },
 *   inc: { xp: reward, auraPoints: reward, submissions: 1 },
 *   level: { field: 'level', counter: 'xp', thresholds: [100, 500, 1400, 3000, 5500] },
 *   badges: { field: 'badges', rules: [{ badge: 'first-steps', counter: 'submissions', atLeast: 1 }] },
 *   opId: requestId, // a double click or a retry applies once
 * });
 * if (result.outcome === 'applied') for (const level of result.levelsGained) notifyLevelUp(level);
 * ```
 */
export function applyProgress<
  TSchema extends Document = Document,
  TLevelField extends string = NumericPath<TSchema>,
  TLevelCounter extends string = NumericPath<TSchema>,
  TBadgesField extends string = ArrayPath<TSchema>,
  TBadgeCounter extends string = NumericPath<TSchema>,
  TOpId extends string | undefined = undefined,
>(
  collection: Collection<TSchema>,
  options: ApplyProgressOptions<
    TSchema,
    TLevelField,
    TLevelCounter,
    TBadgesField,
    TBadgeCounter,
    TOpId
  >,
): Promise<
  [TOpId] extends [undefined] ? ApplyProgressResult<TSchema> : ApplyProgressOnceResult<TSchema>
>;
export async function applyProgress<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: ApplyProgressOptions<TSchema>,
): Promise<ApplyProgressOnceResult<TSchema>> {
  const plan = validate(collection, options);
  const { filter, pipeline, projection, guardInPipeline } = buildCommand(plan);
  const sessionOption = plan.session === undefined ? {} : { session: plan.session };

  const value = await collection.findOneAndUpdate(filter as Filter<TSchema>, pipeline, {
    returnDocument: 'before',
    projection,
    ...sessionOption,
  });
  if (value !== null) {
    // A retried command is answered with the whole before-image, unprojected: the server
    // evaluates the same projection over it (one more command, on this path only).
    const projected = isUnprojectedImage(value)
      ? await projectRetryImage(PRIMITIVE, collection, value, projection, plan.session)
      : value;
    if (guardInPipeline) {
      const repeat = repeatedDocument<TSchema>(projected);
      if (repeat !== undefined) return { outcome: 'alreadyApplied', document: repeat };
    }
    return applied<TSchema>(plan, projected);
  }

  // Without an opId only `filter` guards the update: nothing matched, nothing to read. With the
  // op id guard in the pipeline, `filter` alone selected: nothing matched it either.
  if (plan.op === undefined || guardInPipeline) return { outcome: 'notFound' };
  // From the primary (unless in a transaction): a stale secondary could miss the recorded id.
  // The server tells whether the id is recorded, under the collation its guard used.
  const read = await readWithVerdicts(
    PRIMITIVE,
    collection,
    plan.filter,
    { applied: opQuestion(plan.op) },
    plan.session,
  );
  if (read?.verdicts.applied) return { outcome: 'alreadyApplied', document: read.document };
  // Also when a matching document appeared after the update ran: it did not match then.
  return { outcome: 'notFound' };
}

// =============================================================================================
// Validation

interface Plan {
  readonly filter: Document;
  readonly inc: Readonly<Record<string, number>>;
  readonly level: ProgressLevels | undefined;
  readonly badges: ProgressBadges | undefined;
  readonly session: ClientSession | undefined;
  readonly op: OpGuard | undefined;
}

const v = validator(PRIMITIVE);

/** `a` and `b` name the same field, or one lies inside the other. */
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
}

function object(value: unknown, option: string, known: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(value)) return v.fail(option, `must be an object, got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) v.fail(`${option}.${key}`, `is unknown (known: ${known.join(', ')})`);
  }
  return value;
}

function validate<TSchema extends Document>(collection: Collection<TSchema>, raw: unknown): Plan {
  v.collection(collection);
  const options = v.options(raw) as Record<string, unknown> & ApplyProgressOptions;
  v.knownKeys(options, KNOWN_OPTIONS);
  const filter = v.filter(options.filter);

  /** Paths this call writes, with the option that names each, to reject overlaps. */
  const written: [path: string, option: string][] = [];
  const write = (value: unknown, option: string) => {
    const path = v.writablePath(value, option);
    for (const [other, otherOption] of written) {
      if (overlaps(path, other))
        v.fail(option, `overlaps ${otherOption} ("${other}"): name a field of its own`);
    }
    written.push([path, option]);
  };

  if (!isPlainObject(options.inc)) {
    v.fail('inc', `must be an object of counters, got ${describe(options.inc)}`);
  }
  const inc = options.inc;
  if (Object.keys(inc).length === 0) v.fail('inc', 'must name at least one counter');
  for (const [path, amount] of Object.entries(inc)) {
    write(path, `inc.${path}`);
    v.positiveNumber(amount, `inc.${path}`);
  }

  /** A counter read by a rule: an incremented counter, or a field nothing here writes. */
  const counter = (value: unknown, option: string): string => {
    const path = v.path(value, option);
    if (Object.hasOwn(inc, path)) return path;
    for (const [other, otherOption] of written) {
      if (overlaps(path, other)) {
        v.fail(option, `overlaps ${otherOption} ("${other}"): name an inc key or another field`);
      }
    }
    return path;
  };

  // Fields first, counters after: a rule's counter must not name a field this call writes
  // (other than an incremented counter), whichever option writes it.
  const levelRaw =
    options.level === undefined ? undefined : object(options.level, 'level', LEVEL_KEYS);
  const badgesRaw =
    options.badges === undefined ? undefined : object(options.badges, 'badges', BADGES_KEYS);
  if (levelRaw !== undefined) write(levelRaw.field, 'level.field');
  if (badgesRaw !== undefined) write(badgesRaw.field, 'badges.field');

  let level: ProgressLevels | undefined;
  if (levelRaw !== undefined) {
    const thresholds = levelRaw.thresholds;
    if (!Array.isArray(thresholds) || thresholds.length === 0) {
      return v.fail(
        'level.thresholds',
        `must be a non-empty array of numbers, got ${describe(thresholds)}`,
      );
    }
    let previous = Number.NEGATIVE_INFINITY;
    thresholds.forEach((threshold: unknown, i) => {
      const value = v.finiteNumber(threshold, `level.thresholds.${i}`);
      if (value < previous) {
        v.fail(
          `level.thresholds.${i}`,
          `is ${value}, below the previous threshold ${previous}: thresholds must not decrease`,
        );
      }
      previous = value;
    });
    level = {
      field: levelRaw.field as string,
      counter: counter(levelRaw.counter, 'level.counter'),
      thresholds: [...(thresholds as number[])],
    };
  }

  let badges: ProgressBadges | undefined;
  if (badgesRaw !== undefined) {
    const list = badgesRaw.rules;
    if (!Array.isArray(list) || list.length === 0) {
      return v.fail('badges.rules', `must be a non-empty array of rules, got ${describe(list)}`);
    }
    const names = new Set<string>();
    const rules = list.map((item: unknown, i): BadgeRule => {
      const rule = object(item, `badges.rules.${i}`, RULE_KEYS);
      const badge = rule.badge;
      if (typeof badge !== 'string' || badge.length === 0 || badge.length > MAX_NAME_LENGTH) {
        return v.fail(
          `badges.rules.${i}.badge`,
          `must be a non-empty string of at most ${MAX_NAME_LENGTH} characters, got ${describe(badge)}`,
        );
      }
      if (names.has(badge)) {
        v.fail(
          `badges.rules.${i}.badge`,
          `repeats the badge ${JSON.stringify(badge)}: list each badge once`,
        );
      }
      names.add(badge);
      return {
        badge,
        counter: counter(rule.counter, `badges.rules.${i}.counter`),
        atLeast: v.finiteNumber(rule.atLeast, `badges.rules.${i}.atLeast`),
      };
    });
    badges = { field: badgesRaw.field as string, rules };
  }

  const session = v.session(options.session, collection);
  const op = opGuard(v, options);
  for (const [path, option] of written) assertNoOverlap(v, op, path, option);
  if (level !== undefined) assertNoOverlap(v, op, level.counter, 'level.counter');
  badges?.rules.forEach((rule, i) => {
    assertNoOverlap(v, op, rule.counter, `badges.rules.${i}.counter`);
  });
  return { filter, inc, level, badges, session, op };
}

// =============================================================================================
// The command

/**
 * The filter, the update pipeline and the projection. The pipeline's `$set` and the
 * projection's `facts` share the same expression objects over the same pre-image, so what the
 * projection reports is what the update wrote.
 */
function buildCommand(plan: Plan): {
  filter: Document;
  pipeline: Document[];
  projection: Document;
  /** The op id guard is in the pipeline (and the projection), not in the filter. */
  guardInPipeline: boolean;
} {
  const { inc, level, badges, op } = plan;
  const field = (path: string) => `$${path}`;
  /** `expr` when it is a number, else 0 (missing, null, string, …). */
  const numeric = (expr: unknown): Document => ({
    $let: { vars: { n: expr }, in: { $cond: [{ $isNumber: '$$n' }, '$$n', 0] } },
  });
  const incremented = (path: string, amount: number): Document => ({
    $add: [{ $ifNull: [field(path), 0] }, amount],
  });
  /** A rule's counter as this call leaves it. */
  const counterAfter = (path: string): Document => {
    // Own keys only: a rule counter named `toString` is a field, not Object.prototype.toString.
    const amount = Object.hasOwn(inc, path) ? inc[path] : undefined;
    return numeric(amount === undefined ? field(path) : incremented(path, amount));
  };

  // The `$set` is built from [path, expression] entries with Object.fromEntries, which defines
  // own properties: a plain `set[path] = …` with the path `__proto__` would set the object's
  // prototype instead, and the counter would silently vanish from the update.
  const set: [path: string, expression: unknown][] = [];
  const facts: Document = {};
  const counters = Object.entries(inc).map(([path, amount]) => incremented(path, amount));
  Object.keys(inc).forEach((path, i) => {
    set.push([path, counters[i]]);
  });
  facts.counters = counters;
  if (op !== undefined) {
    const opIds = opRecordExpression(op);
    set.push([op.field, opIds]);
    facts.opIds = opIds;
  }

  if (level !== undefined) {
    const before = numeric(field(level.field));
    const reached = {
      $let: {
        vars: { c: counterAfter(level.counter) },
        in: {
          $size: {
            $filter: {
              input: { $literal: level.thresholds },
              as: 't',
              cond: { $gte: ['$$c', '$$t'] },
            },
          },
        },
      },
    };
    const after = { $max: [before, reached] };
    set.push([level.field, after]);
    facts.levelBefore = before;
    facts.level = after;
  }

  if (badges !== undefined) {
    const held = {
      $concatArrays: badges.rules.map((rule) => ({
        $cond: [
          { $gte: [counterAfter(rule.counter), rule.atLeast] },
          [{ $literal: rule.badge }],
          [],
        ],
      })),
    };
    /** Badges whose rule holds and that `$$had` lacks, in rule order. */
    const earned = {
      $filter: { input: held, as: 'b', cond: { $not: [{ $in: ['$$b', '$$had'] }] } },
    };
    const had = { $ifNull: [field(badges.field), []] };
    const after = { $let: { vars: { had }, in: { $concatArrays: ['$$had', earned] } } };
    set.push([badges.field, after]);
    facts.badges = after;
    facts.earned = { $let: { vars: { had }, in: earned } };
  }

  const update = { $set: Object.fromEntries(set) };
  // `facts` is one expression object, not a sub-projection: in a find projection,
  // `{ field: { $slice: … } }` would be the projection operator $slice, not the expression
  // the op log's `$slice` is.
  const factsExpression = { $mergeObjects: [facts] };
  if (op === undefined || !selectsOneDocument(plan.filter) || op.field.split('.')[0] === '_id') {
    // A filter that may match several documents keeps the op id guard in the filter, so that
    // it picks one that has not applied the op (the guard in the update could pick one that
    // has, and report a repeat while another document still lacks the award).
    return {
      filter: op === undefined ? plan.filter : { $and: [plan.filter, opFilter(op)] },
      pipeline: [update],
      projection: { _id: 0, before: '$$ROOT', facts: factsExpression },
      guardInPipeline: false,
    };
  }
  // The op id guard in the update, so that a repeat answers in this same command. The `$set`
  // stays the one above, untouched (a success stores exactly what the guard-in-filter form
  // stores); around it, a repeat's document is parked in a field of a wrapper document that
  // has no `_id`, the `$set` writes into the wrapper (every expression above reads missing
  // fields there without failing), and the last stage takes the parked document back out. The
  // result is byte-identical to the stored document, which mongod treats as a no-op
  // (pipeline_executor.cpp "Check for noop"): no oplog entry, no write for another transaction
  // to conflict with. A stored document always has an `_id`, and the `$set` never writes one
  // (validation refuses `_id` paths; an op log named `_id` stays on the path above), so the
  // wrapper is told apart by its missing `_id`.
  const seen = opQuestion(op) as Document;
  const parked = parkingField(plan);
  return {
    filter: plan.filter,
    pipeline: [
      { $replaceWith: { $cond: [seen, { [parked]: '$$ROOT' }, '$$ROOT'] } },
      update,
      {
        $replaceWith: {
          $cond: [{ $eq: [{ $type: '$_id' }, 'missing'] }, `$${parked}`, '$$ROOT'],
        },
      },
    ],
    // Over the same before-image, the same verdict: a repeat reports the document as it is
    // (the facts, which could fail on a counter holding a string, are not evaluated: `$cond`
    // evaluates the branch it takes only).
    projection: {
      _id: 0,
      before: '$$ROOT',
      facts: { $cond: [seen, { $literal: { repeat: true } }, factsExpression] },
    },
    guardInPipeline: true,
  };
}

/**
 * A top-level field name that no path of this call starts with (written or read), for the
 * wrapper a repeat's document is parked in (see buildCommand).
 */
function parkingField(plan: Plan): string {
  const paths = [
    ...Object.keys(plan.inc),
    ...(plan.op === undefined ? [] : [plan.op.field]),
    ...(plan.level === undefined ? [] : [plan.level.field, plan.level.counter]),
    ...(plan.badges === undefined
      ? []
      : [plan.badges.field, ...plan.badges.rules.map((rule) => rule.counter)]),
  ];
  const taken = new Set(paths.map((path) => path.split('.')[0]));
  let name = 'parked';
  while (taken.has(name)) name = `_${name}`;
  return name;
}

/** The document a repeat found, when the projected reply says the op id was in its log. */
function repeatedDocument<TSchema extends Document>(value: Document): WithId<TSchema> | undefined {
  const facts = getField(value, 'facts');
  if (!isPlainObject(facts) || getField(facts, 'repeat') !== true) return undefined;
  const before = getField(value, 'before');
  if (!isPlainObject(before)) {
    throw new MongoAtomicsError(
      `${PRIMITIVE}: the server did not evaluate the findAndModify projection (MongoDB 4.4+ is required), so the outcome cannot be read; the op id was already recorded, nothing was changed. Upgrade the server to MongoDB 4.4 or later`,
    );
  }
  return before as WithId<TSchema>;
}

// =============================================================================================
// Outcome

interface Facts {
  readonly before: Document;
  readonly counters: unknown[];
  readonly opIds?: unknown;
  readonly levelBefore?: unknown;
  readonly level?: unknown;
  readonly badges?: unknown;
  readonly earned?: unknown;
}

/** The facts the projection reports, read from a reply that carries it. */
function projectedFacts(plan: Plan, value: Document): Facts {
  const before = getField(value, 'before');
  const facts = getField(value, 'facts') as Partial<Facts> | undefined;
  const fine =
    isPlainObject(before) &&
    isPlainObject(facts) &&
    Array.isArray(facts.counters) &&
    (plan.op === undefined || Array.isArray(facts.opIds)) &&
    (plan.level === undefined ||
      (numericValue(facts.level) !== undefined && numericValue(facts.levelBefore) !== undefined)) &&
    (plan.badges === undefined ||
      (Array.isArray(facts.badges) &&
        Array.isArray(facts.earned) &&
        facts.earned.every((badge) => typeof badge === 'string')));
  if (!fine) {
    // Neither the projection nor a stored image (which always holds `_id`): only a server that
    // does not evaluate projection expressions (< 4.4) answers like this.
    throw new MongoAtomicsError(
      `${PRIMITIVE}: the server did not evaluate the findAndModify projection (MongoDB 4.4+ is required), so the outcome cannot be read; the update may have been applied. Upgrade the server to MongoDB 4.4 or later, and check the document before repeating the call`,
    );
  }
  return { ...(facts as Facts), before };
}

/** The result of an award that applied, from the projected reply (before-image and facts). */
function applied<TSchema extends Document>(plan: Plan, value: Document): ProgressApplied<TSchema> {
  const facts = projectedFacts(plan, value);
  const document = facts.before;
  // In the order the `$set` lists them, so new fields land in the same order as on the server.
  Object.keys(plan.inc).forEach((path, i) => {
    placeField(document, path, facts.counters[i]);
  });
  if (plan.op !== undefined) placeField(document, plan.op.field, facts.opIds);

  const levelsGained: number[] = [];
  if (plan.level !== undefined) {
    // The server compares NaN below every number, as here once it is read as 0. When the
    // level rose, `after` is the number of thresholds reached: a whole number, so the loop ends.
    const stored = numericValue(facts.levelBefore) as number;
    const before = Number.isNaN(stored) ? 0 : stored;
    const after = numericValue(facts.level) as number;
    placeField(document, plan.level.field, facts.level);
    if (after > before) {
      for (let n = Math.max(1, Math.floor(before) + 1); n <= after; n++) levelsGained.push(n);
    }
  }
  let badgesEarned: string[] = [];
  if (plan.badges !== undefined) {
    placeField(document, plan.badges.field, facts.badges);
    badgesEarned = facts.earned as string[];
  }
  return { outcome: 'applied', document: document as WithId<TSchema>, levelsGained, badgesEarned };
}

// =============================================================================================
// Rebuilding the document

/**
 * Puts `value` at the dotted `path` in `doc` (mutated), as a pipeline `$set` does: missing
 * parents are created, a scalar parent is replaced by a document, an array parent gets the field
 * in each of its document elements. Every write defines an own property and every read follows
 * own properties only (`getField`), so a path segment `__proto__` (an ordinary field name to
 * MongoDB, an own property in what js-bson deserialises) names that field and never reaches a
 * prototype.
 */
export function placeField(doc: Document, path: string, value: unknown): void {
  place(doc, path.split('.'), value);
}

function place(doc: Document, segments: readonly string[], value: unknown): void {
  const [head, ...rest] = segments;
  if (head === undefined) return;
  if (rest.length === 0) {
    setOwn(doc, head, value);
    return;
  }
  // One segment (no dot): getField reads that own property.
  const child = getField(doc, head);
  if (Array.isArray(child)) {
    setOwn(
      doc,
      head,
      child.map((element: unknown) => {
        if (Array.isArray(element)) return element;
        const target: Document = isPlainObject(element) ? element : {};
        place(target, rest, value);
        return target;
      }),
    );
    return;
  }
  const target: Document = isPlainObject(child) ? child : {};
  setOwn(doc, head, target);
  place(target, rest, value);
}

/** Sets an own, enumerable property, even for `__proto__` (a plain assignment would set the prototype). */
function setOwn(target: Document, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}
