/**
 * withIdempotencyKey: run a request's work once per idempotency key and replay its result to
 * every duplicate of that request.
 *
 * The race it closes (seeds 002 and 003: double submits, payment webhooks delivered twice):
 * "look the key up, run the work if it is unknown, then store the result" lets two duplicates
 * arriving together both find nothing and both do the work (20 concurrent duplicates ran it 20
 * times in our tests). Here the claim is an upsert on the unique `_id`: of N concurrent
 * duplicates exactly one inserts, and the others learn what to do from the record it wrote, in
 * the reply to that same command.
 *
 * Records (one per key, in a collection of their own):
 *   { _id: key, state: 'inProgress' | 'completed', fingerprint?, owner, leaseUntil?, value?,
 *     createdAt, completedAt?, expiresAt }
 * `owner` is a random token per claim: every later write on the record is conditional on it, so
 * a caller whose lease was taken over can neither complete nor release someone else's claim.
 *
 * Contract
 * - **Claim, or read**, in one command: `findOneAndUpdate({ _id: key }, { $setOnInsert: { state:
 *   'inProgress', owner: me, leaseUntil: now + leaseMs, … } }, { upsert: true, returnDocument:
 *   'before' })`. `null`: no record existed, ours is inserted, this caller runs `fn`. A
 *   record: `$setOnInsert` did nothing (nothing written, no oplog entry) and the reply is the
 *   record as stored. Concurrent first calls: the loser's duplicate key error is retried by
 *   the server as an update (MongoDB 4.2+: equality on `_id`, `_id` unchanged, no
 *   transaction), so it gets the winner's record; a server that does not retry answers E11000,
 *   and the record is then read with `find` (as the insert-based claim of earlier versions
 *   did). With the record:
 *   - fingerprint differs from the one given → IdempotencyKeyConflictError (nothing runs);
 *   - `completed` → `replayed` with the stored value;
 *   - `inProgress`, lease live → `inProgress`, or with `wait`, read again (`find`) every
 *     `intervalMs` until it completes, its lease expires or `timeoutMs` passes;
 *   - `inProgress`, lease expired (the holder died, or overran its lease) → take it over:
 *     `findOneAndUpdate({ _id, state: 'inProgress', owner: old, leaseUntil ≤ now },
 *     { $set: { owner: me, leaseUntil } })`; the winner runs `fn` (`tookOver: true`), a loser
 *     reads again. A command of its own on purpose: it is bounded by `maxTimeMS` (a holder's
 *     transaction may hold the record), which a fresh claim must not be, and its filter tells
 *     from the reply alone whether it won; folded into the claim it would need both;
 *   - no record (released or expired meanwhile) → claim again.
 * - **Completion**: `updateOne({ _id, owner: me, state: 'inProgress' }, { $set: { state:
 *   'completed', value, completedAt, expiresAt: now + retentionMs } })`. Matching nothing means
 *   the lease was taken over while `fn` ran, so `fn` has run twice: reported as `leaseLost: true`,
 *   never hidden. `leaseMs` must exceed `fn`'s worst-case duration (see `leaseMs`). If the
 *   completion fails, `fn`'s work is not undone: IdempotencyResultNotStoredError carries
 *   `value`, and the key is not released (an immediate retry would run `fn` again). With
 *   `written: false` (the server refused it, or it was never sent) the key stays in progress
 *   until the lease ends. With `written: 'unknown'` the reply was lost (network error,
 *   timeout): the record may say `completed` or stay in progress until the lease ends; read
 *   it to know. With `written: true` the completion applied but came
 *   back with a write concern error: the record says `completed` and duplicates replay `value`
 *   unless a failover rolls the write back. A write concern error on a completion that matched
 *   nothing is the lost lease above (`leaseLost: true`).
 * - **Failure**: `fn` threw: `deleteOne({ _id, owner: me, state: 'inProgress' })` releases the key
 *   so a retry can run, and the error is rethrown unchanged (the same object). The release waits
 *   at most 1 s (`maxTimeMS`). A failed release is not reported (it would replace your error):
 *   the key then frees itself when the lease ends.
 * - **Transaction mode** (`client` given): the claim is made outside the transaction, so that
 *   duplicates see it at once. Then, through withRetryingTransaction, each attempt runs
 *   1. a *fence*: `updateOne({ _id, owner: me, state: 'inProgress' }, { $inc: { fence: 1 } })`
 *      in the transaction. It proves the claim is still ours in the transaction's snapshot, and
 *      the write makes the transaction hold the record: a takeover (a plain write) now waits
 *      until this transaction commits or aborts, so the lease cannot be lost while `fn` runs,
 *      however long it takes. If the fence matches nothing, the lease was lost before this
 *      attempt: `fn` does not run, and the call re-reads the record like a duplicate;
 *   2. `fn({ session, signal, attempt })`: the business writes, with `session`;
 *   3. the completion, with `session`, and the commit: the stored result and the business
 *      writes commit together or not at all. No crash window: a process that dies before the
 *      commit leaves neither (the claim stays `inProgress` until its lease ends).
 *   If the transaction fails (fn's error, retry budget spent), the key is released as above.
 *   A commit that fails without a label (e.g. refused by the server) can leave the transaction
 *   open on the server, still holding the record: the release then gives up after its 1 s
 *   instead of waiting for the server to time the transaction out
 *   (`transactionLifetimeLimitSeconds`, 60 s by default), the commit error is rethrown, and the
 *   key frees itself once the server has aborted the transaction and the lease has ended.
 * - **`client`** must be the MongoClient the collection was obtained from (compared with the
 *   collection's own client): another one is refused with InvalidArgumentError before anything
 *   is sent, since the transaction would not cover the records.
 * - **Round trips** (fn's own commands not counted): executed: 2 (`findAndModify` claim,
 *   `update`); replayed, inProgress, fingerprint conflict: 1 (`findAndModify`), plus 1 `find`
 *   per `wait` poll; fn threw: 2 (`findAndModify`, `delete`); takeover: 3 (`findAndModify`
 *   claim, `findAndModify` takeover, `update`). Transaction mode executed: 4 (`findAndModify`,
 *   `update` fence, `update` completion, `commitTransaction`); fn threw: 4 (`findAndModify`,
 *   `update`, `abortTransaction`, `delete`); a transient conflict re-runs the attempt (see
 *   withRetryingTransaction). A claim met by an E11000 the server did not retry: 1 `find` more.
 * - **Clocks**: leases are dates written and compared by the callers' clocks. Clock skew between
 *   application servers shortens or lengthens a lease by the skew: keep clocks synchronised
 *   (NTP) and `leaseMs` well above the skew. `expiresAt` is compared by the server's TTL monitor.
 * - **Expiry**: records are deleted by a TTL index on `expiresAt` (ensureIdempotencyIndexes, once
 *   at startup). The TTL monitor runs every 60 s, so a record may outlive `expiresAt` by that
 *   much; until it is deleted it is still replayed.
 * - Works on a standalone server without `client`; transaction mode needs a replica set.
 */
import { randomUUID } from 'node:crypto';
import type { ClientSession, Collection, Document, MongoClient } from 'mongodb';
import {
  isDuplicateKeyError,
  isMaxTimeMSExpired,
  writeConcernErrorMatched,
  writeMayHaveApplied,
} from './driver.js';
import {
  IdempotencyKeyConflictError,
  IdempotencyResultNotStoredError,
  InvalidArgumentError,
  isInvalidArgumentError,
  MongoAtomicsError,
} from './errors.js';
import { type WithRetryingTransactionOptions, withRetryingTransaction } from './transaction.js';
import { describe, isPlainObject, validator } from './validate.js';

const PRIMITIVE = 'withIdempotencyKey';

/**
 * How long a claim is protected: 60 s, above the usual HTTP request timeout (a client whose
 * request is still within its lease has not retried yet) and equal to MongoDB's default
 * transaction lifetime limit.
 */
const DEFAULT_LEASE_MS = 60_000;
/** How long a completed result is replayed: 24 h, the retention common payment APIs use. */
const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000;
/** Between two reads while waiting for another caller to finish. */
const DEFAULT_WAIT_INTERVAL_MS = 100;
/** Keys come from request headers: bound what a client can make us store and index. */
const MAX_KEY_LENGTH = 512;
const MAX_FINGERPRINT_LENGTH = 1024;
/** setTimeout's largest delay; longer ones fire at once. */
const MAX_TIMER_MS = 2_147_483_647;
/**
 * How long a takeover may wait when the holder's transaction holds the record (transaction
 * mode, lease expired while its transaction runs). Without `wait` the call then answers
 * `inProgress` after this; with `wait`, the remaining wait time is used instead.
 */
const TAKEOVER_MAX_TIME_MS = 1_000;
/**
 * How long releasing a key after a failure may wait for a transaction that still holds the
 * record (see release): as long as a takeover waits, then the key frees itself later.
 */
const RELEASE_MAX_TIME_MS = TAKEOVER_MAX_TIME_MS;
/**
 * Claims and takeovers in a row that found the key freshly claimed by another caller, each time
 * without waiting. Each one means another caller made progress, so this is never reached in
 * practice; it keeps a pathological churn (claimed and released again and again) from spinning.
 */
const MAX_ROUNDS = 20;

/** The states of an idempotency record. */
export const IdempotencyState = {
  /** Claimed; `fn` is running (or its holder died and the lease will expire). */
  InProgress: 'inProgress',
  /** `fn` finished; `value` is replayed to duplicates. */
  Completed: 'completed',
} as const;
/** One of the {@link IdempotencyState} values: `'inProgress'` or `'completed'`. */
export type IdempotencyState = (typeof IdempotencyState)[keyof typeof IdempotencyState];

/** A record in the idempotency collection, one per key. */
export interface IdempotencyRecord {
  /** The idempotency key. */
  _id: string;
  /** `inProgress` while `fn` runs (or its holder died), `completed` once its value is stored. */
  state: IdempotencyState;
  /** The request fingerprint given with the first claim, if any. */
  fingerprint?: string;
  /** Random token of the caller that claimed (or took over) the key. */
  owner: string;
  /** While `inProgress`: when the claim may be taken over. */
  leaseUntil?: Date;
  /** When `completed`: what `fn` resolved to (absent when it resolved to `undefined`). */
  value?: unknown;
  /** When the key was first claimed (the claiming caller's clock). */
  createdAt: Date;
  /** When `completed`: when the value was stored (the storing caller's clock). */
  completedAt?: Date;
  /** The TTL index deletes the record after this date. */
  expiresAt: Date;
  /** Transaction mode: written by the fence inside the transaction, removed on completion. */
  fence?: number;
}

/** Wait for a concurrent duplicate to finish instead of answering `inProgress` at once. */
export interface IdempotencyWait {
  /** The longest wait in ms; then the call resolves `inProgress`. */
  readonly timeoutMs: number;
  /** Between two reads of the record, in ms. @default 100 */
  readonly intervalMs?: number;
}

/** What `fn` receives without `client`. */
export interface IdempotencyContext {
  /**
   * Aborts when this caller's lease ends (its reason: a MongoAtomicsError). Past that moment a
   * duplicate may take the key over and run `fn` too: pass it to long-running work (HTTP
   * clients, loops) so that the work stops instead of running twice. Made on first read (an
   * `fn` that never reads it costs no AbortController and no timer); read after the lease
   * ended, it is already aborted; it never aborts once `fn` has returned or thrown.
   */
  readonly signal: AbortSignal;
  /** Absent: without `client` there is no transaction; pass `client` for transaction mode. */
  readonly session?: never;
}

/** What `fn` receives in transaction mode (`client` given). */
export interface IdempotencyTransactionContext {
  /** The transaction's session: pass it to every business write, one at a time. */
  readonly session: ClientSession;
  /** The transaction attempt's signal (caller's `transaction.signal`, the retry budget). */
  readonly signal: AbortSignal;
  /** 1-based transaction attempt: `fn` runs again after a transient conflict. */
  readonly attempt: number;
}

interface IdempotencyCommonOptions {
  /**
   * The idempotency key, e.g. the `Idempotency-Key` request header. Non-empty, at most 512
   * characters. Namespace it if keys come from several clients (`${userId}:${key}`).
   */
  readonly key: string;
  /**
   * What identifies the request the key was first used for, e.g. a SHA-256 of method, path
   * and canonical body. A later call with the same key and a different fingerprint (a missing
   * one included) throws IdempotencyKeyConflictError instead of replaying someone else's
   * result. @default none (calls without a fingerprint match each other)
   */
  readonly fingerprint?: string;
  /**
   * How long the claim is protected, in ms. When it ends while `fn` still runs, a duplicate may
   * take the key over and run `fn` again (reported to the first caller as `leaseLost`). Choose
   * it above `fn`'s worst-case duration plus clock skew between your servers; a holder that
   * died blocks its key this long. In transaction mode it only has to cover the time until the
   * transaction's first statement: the transaction then holds the record.
   * @default 60000
   */
  readonly leaseMs?: number;
  /**
   * How long a completed result is kept and replayed, in ms from completion; must exceed
   * `leaseMs`. Deletion needs the TTL index (ensureIdempotencyIndexes) and may lag by the TTL
   * monitor's period (60 s). @default 86400000 (24 h)
   */
  readonly retentionMs?: number;
  /** Wait for a concurrent duplicate to finish. @default none: answer `inProgress` at once */
  readonly wait?: IdempotencyWait;
}

/**
 * Options of withIdempotencyKey without `client`: `fn` runs outside a transaction, and its
 * value is stored once it resolves.
 *
 * @typeParam T - what `fn` resolves to.
 */
export interface WithIdempotencyKeyOptions<T> extends IdempotencyCommonOptions {
  /**
   * The work to run once per key. Its value is stored and replayed: it must be BSON
   * serialisable and at most ~16 MB (plain objects, arrays, strings, numbers, booleans, null,
   * Date, ObjectId, Binary…). `undefined` is replayed as `undefined`; inside objects `undefined`
   * follows the client's `ignoreUndefined`; class instances come back as plain objects; keys
   * starting with `$` or holding a `.` need MongoDB 5.0 (older servers refuse them).
   */
  readonly fn: (context: IdempotencyContext) => Promise<T>;
  /** No client: `fn` runs outside a transaction. */
  readonly client?: undefined;
  /** Only with `client`. */
  readonly transaction?: undefined;
}

/**
 * Options of withIdempotencyKey in transaction mode (`client` given): `fn`'s writes and the
 * stored result commit together in one transaction. Needs a replica set.
 *
 * @typeParam T - what `fn` resolves to.
 */
export interface WithIdempotencyKeyTransactionOptions<T> extends IdempotencyCommonOptions {
  /**
   * The client that owns `collection`: `fn` and the stored result run in one transaction of
   * its own, so they commit together. Needs a replica set. Another client than the
   * collection's is refused (InvalidArgumentError, nothing sent).
   */
  readonly client: MongoClient;
  /** Retry budget, backoff, hooks and signal of the transaction runner. */
  readonly transaction?: WithRetryingTransactionOptions | undefined;
  /** As in WithIdempotencyKeyOptions; write with `session`. It may run more than once. */
  readonly fn: (context: IdempotencyTransactionContext) => Promise<T>;
}

/**
 * The options of one withIdempotencyKey call: WithIdempotencyKeyOptions (no `client`) or
 * WithIdempotencyKeyTransactionOptions (`client` given). `client` tells the two apart, so `fn`'s
 * context is typed by the mode and a mistake is reported against that mode alone.
 */
export type WithIdempotencyKeyAnyOptions<T> =
  | WithIdempotencyKeyOptions<T>
  | WithIdempotencyKeyTransactionOptions<T>;

/**
 * What withIdempotencyKey did, told by `outcome`. Fields a branch lacks are typed `?: never`,
 * so destructuring narrows.
 *
 * @typeParam T - what `fn` resolves to.
 */
export type IdempotencyResult<T> =
  | {
      /** This call ran `fn` (and stored its value, unless `leaseLost`). */
      readonly outcome: 'executed';
      /** What `fn` resolved to, as returned (not read back from BSON). */
      readonly value: T;
      /**
       * `true` when this caller's lease was taken over while `fn` ran: another caller may
       * have run `fn` too, and `value` was not stored. Never in transaction mode.
       */
      readonly leaseLost: boolean;
      /**
       * `true` when the key was held by a caller whose lease had expired (it probably died
       * during `fn`): any effect `fn` has outside MongoDB may already have happened once.
       */
      readonly tookOver: boolean;
      /** Absent on this outcome. */
      readonly leaseUntil?: never;
    }
  | {
      /** An earlier call completed; `fn` did not run. */
      readonly outcome: 'replayed';
      /** The earlier call's stored result, as read back from BSON. */
      readonly value: T;
      /** Absent on this outcome. */
      readonly leaseLost?: never;
      /** Absent on this outcome. */
      readonly tookOver?: never;
      /** Absent on this outcome. */
      readonly leaseUntil?: never;
    }
  | {
      /** Another caller holds the key and has not finished (within `wait`, if given). */
      readonly outcome: 'inProgress';
      /**
       * When the holder's claim may be taken over: a hint for `Retry-After`. Informational
       * (the holder's clock, as every lease of this primitive).
       */
      readonly leaseUntil: Date;
      /** Absent: there is no result yet. */
      readonly value?: never;
      /** Absent on this outcome. */
      readonly leaseLost?: never;
      /** Absent on this outcome. */
      readonly tookOver?: never;
    };

/** A collection of IdempotencyRecord (a plain `db.collection(name)` is accepted). */
export type IdempotencyCollection = Collection<IdempotencyRecord> | Collection<Document>;

const OPTIONS = [
  'key',
  'fn',
  'fingerprint',
  'leaseMs',
  'retentionMs',
  'wait',
  'client',
  'transaction',
] as const;
const WAIT_OPTIONS = ['timeoutMs', 'intervalMs'] as const;

interface Settings {
  readonly key: string;
  readonly fn: (context: never) => Promise<unknown>;
  readonly fingerprint: string | undefined;
  readonly leaseMs: number;
  readonly retentionMs: number;
  readonly wait: Required<IdempotencyWait> | undefined;
  readonly client: MongoClient | undefined;
  readonly transaction: WithRetryingTransactionOptions | undefined;
}

const v = validator(PRIMITIVE);

function boundedString(value: unknown, option: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    return v.fail(
      option,
      `must be a non-empty string of at most ${max} characters, got ${describe(value)}`,
    );
  }
  return value;
}

function timerMs(value: unknown, option: string): number {
  const ms = v.positiveNumber(value, option);
  if (ms > MAX_TIMER_MS) v.fail(option, `must be at most ${MAX_TIMER_MS} (~24.8 days)`);
  return ms;
}

function validateWait(value: unknown): Required<IdempotencyWait> | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) {
    return v.fail('wait', `must be an object { timeoutMs, intervalMs? }, got ${describe(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!(WAIT_OPTIONS as readonly string[]).includes(key)) {
      v.fail(`wait.${key}`, `is not a wait option (known: ${WAIT_OPTIONS.join(', ')})`);
    }
  }
  return {
    timeoutMs: timerMs(value.timeoutMs, 'wait.timeoutMs'),
    intervalMs:
      value.intervalMs === undefined
        ? DEFAULT_WAIT_INTERVAL_MS
        : timerMs(value.intervalMs, 'wait.intervalMs'),
  };
}

function isAbortSignalLike(value: unknown): boolean {
  const candidate = value as Partial<AbortSignal> | null | undefined;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.aborted === 'boolean' &&
    typeof candidate.addEventListener === 'function'
  );
}

/** Thrown by the validation probe below; never escapes. */
class ProbeSignal extends Error {}

/**
 * The transaction runner validates its options when called, which would be after our claim
 * was sent. Probe it now with an already-aborted signal: it validates everything, then rejects
 * with the signal's reason before starting a session, so nothing is sent.
 */
async function validateTransactionOptions(
  client: MongoClient,
  value: unknown,
): Promise<WithRetryingTransactionOptions | undefined> {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) {
    return v.fail('transaction', `must be an object, got ${describe(value)}`);
  }
  if (value.signal !== undefined && !isAbortSignalLike(value.signal)) {
    v.fail('transaction.signal', `must be an AbortSignal, got ${describe(value.signal)}`);
  }
  const probe = new ProbeSignal();
  try {
    await withRetryingTransaction(client, async () => undefined, {
      ...(value as WithRetryingTransactionOptions),
      signal: AbortSignal.abort(probe),
    });
  } catch (error) {
    if (error === probe) return value as WithRetryingTransactionOptions;
    if (isInvalidArgumentError(error)) {
      throw new InvalidArgumentError(
        PRIMITIVE,
        `transaction.${error.option}`,
        `is invalid: ${error.message}`,
      );
    }
    throw error;
  }
  return value as WithRetryingTransactionOptions;
}

async function validate(collection: unknown, options: unknown): Promise<Settings> {
  v.collection(collection as Collection);
  const o = v.options(options as Record<string, unknown>);
  if (Object.hasOwn(o, 'session')) {
    v.fail(
      'session',
      'is not accepted: the claim must commit before fn runs, outside any transaction; pass "client" to run fn in a transaction whose session fn receives',
    );
  }
  v.knownKeys(o, OPTIONS);
  const key = boundedString(o.key, 'key', MAX_KEY_LENGTH);
  const fn = v.function(o.fn, 'fn') as Settings['fn'];
  const fingerprint =
    o.fingerprint === undefined
      ? undefined
      : boundedString(o.fingerprint, 'fingerprint', MAX_FINGERPRINT_LENGTH);
  const leaseMs = o.leaseMs === undefined ? DEFAULT_LEASE_MS : timerMs(o.leaseMs, 'leaseMs');
  const retentionMs =
    o.retentionMs === undefined
      ? DEFAULT_RETENTION_MS
      : v.positiveNumber(o.retentionMs, 'retentionMs');
  if (retentionMs <= leaseMs) {
    v.fail(
      'retentionMs',
      `must exceed leaseMs (${leaseMs}): the TTL index would otherwise delete claims that are still running`,
    );
  }
  const wait = validateWait(o.wait);
  let client: MongoClient | undefined;
  let transaction: WithRetryingTransactionOptions | undefined;
  if (o.client === undefined) {
    if (o.transaction !== undefined) {
      v.fail('transaction', 'applies only with "client" (transaction mode)');
    }
  } else {
    // The transaction must run on the records' own client.
    client = v.client(o.client as MongoClient, 'client', collection as Collection);
    transaction = await validateTransactionOptions(client, o.transaction);
  }
  return { key, fn, fingerprint, leaseMs, retentionMs, wait, client, transaction };
}

/** Thrown inside the transaction when the fence finds the claim gone; never escapes. */
class LeaseLostSignal extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `fn` once per `key`: the first caller runs it and stores its value, a later duplicate
 * gets the stored value without running it, a concurrent duplicate learns that it is in
 * progress (or waits for it). See the module comment for the records, guards, round trips and
 * failure modes.
 *
 * @example
 * ```ts
 * interface Order { _id: string; userId: string; total: number }
 * const orders = db.collection<Order>('orders');
 * const idempotencyKeys = db.collection<IdempotencyRecord>('idempotencyKeys');
 *
 * const header = req.get('Idempotency-Key');
 * if (header === undefined) return res.status(400).send('Idempotency-Key header required');
 * const result = await withIdempotencyKey(idempotencyKeys, {
 *   key: `${req.user.id}:${header}`,
 *   fingerprint: sha256(`${req.method} ${req.path} ${canonicalJson(req.body)}`),
 *   client,
 *   fn: async ({ session }) => {
 *     await orders.insertOne(order, { session });
 *     return { status: 201, body: order };
 *   },
 * });
 * if (result.outcome === 'inProgress') return res.status(409).set('Retry-After', '1').end();
 * return res.status(result.value.status).json(result.value.body);
 * ```
 *
 * @throws InvalidArgumentError before anything is sent, for invalid arguments.
 * @throws IdempotencyKeyConflictError when the key was used with another fingerprint.
 * @throws fn's own error, unchanged (the key is released first).
 * @throws IdempotencyResultNotStoredError when fn ran but storing its value failed (`value`,
 *   `written`; see Completion in the module comment).
 * @throws RetryBudgetExhaustedError, TransactionsUnsupportedError in transaction mode; a commit
 *   error that is not retryable, unchanged (the key is released, see Transaction mode).
 */
export function withIdempotencyKey<T>(
  collection: IdempotencyCollection,
  options: WithIdempotencyKeyAnyOptions<T>,
): Promise<IdempotencyResult<T>>;
export async function withIdempotencyKey<T>(
  collection: IdempotencyCollection,
  options: WithIdempotencyKeyOptions<T> | WithIdempotencyKeyTransactionOptions<T>,
): Promise<IdempotencyResult<T>> {
  const s = await validate(collection, options);
  const records = collection as Collection<IdempotencyRecord>;
  const started = performance.now();
  const remainingWait = () =>
    s.wait === undefined ? 0 : s.wait.timeoutMs - (performance.now() - started);

  let rounds = 0;
  const nextRound = () => {
    rounds += 1;
    if (rounds > MAX_ROUNDS) {
      throw new MongoAtomicsError(
        `${PRIMITIVE}: key ${JSON.stringify(s.key)} was claimed by another caller ${MAX_ROUNDS} times in a row and released or lost again each time; giving up, fn did not run. Call again later; if it keeps happening, check that fn finishes within leaseMs (callers that outlive their lease are taken over)`,
      );
    }
  };

  for (;;) {
    nextRound();
    const claimed = await claimOrRead(records, s);
    // What the key's record says, when the claim found one; `undefined`: read it (below).
    let record: IdempotencyRecord | null | undefined;
    if (claimed.claim !== undefined) {
      const result = await execute<T>(records, s, claimed.claim, false);
      if (result !== undefined) return result;
    } else {
      record = claimed.record;
    }
    // Someone else holds (or held) the key: decide from what they left.
    for (;;) {
      // From the primary: a stale secondary could show no record (and send us round the claim
      // loop) or an old `inProgress` (and delay a replay). The claim's own answer comes from
      // the primary already (findAndModify always runs there).
      record ??= await records.findOne({ _id: s.key }, { readPreference: 'primary' });
      // Gone (released, or expired by the TTL index): out to the next claim. A `break`, not a
      // labelled `continue`: Stryker's instrumented copy of a labelled loop does not compile.
      if (record === null) break;
      const current = record;
      record = undefined;
      if ((current.fingerprint ?? null) !== (s.fingerprint ?? null)) {
        throw new IdempotencyKeyConflictError(s.key);
      }
      if (current.state === IdempotencyState.Completed) {
        return {
          outcome: 'replayed',
          value: (Object.hasOwn(current, 'value') ? current.value : undefined) as T,
        };
      }
      const leaseUntil = current.leaseUntil instanceof Date ? current.leaseUntil : new Date(0);
      if (leaseUntil.getTime() > Date.now()) {
        const remaining = remainingWait();
        if (remaining <= 0) return { outcome: 'inProgress', leaseUntil };
        // Wake at the interval, at the lease's end (to take over) or at the deadline.
        await sleep(
          Math.min(s.wait?.intervalMs ?? 0, remaining, leaseUntil.getTime() - Date.now() + 1),
        );
        continue;
      }
      const taken = await takeOver(records, s, current.owner, remainingWait());
      if (taken === 'held') {
        const remaining = remainingWait();
        // The recorded lease is already over (its holder's transaction is finishing): tell the
        // caller to come back shortly, not at a time in the past.
        const retryAt = new Date(Date.now() + (s.wait?.intervalMs ?? 100));
        if (remaining <= 0) return { outcome: 'inProgress', leaseUntil: retryAt };
        await sleep(Math.min(s.wait?.intervalMs ?? 0, remaining));
        continue;
      }
      if (taken === undefined) {
        // Another duplicate took it over (or it completed) between our read and our write.
        nextRound();
        continue;
      }
      const result = await execute<T>(records, s, taken, true);
      if (result !== undefined) return result;
      nextRound();
    }
  }
}

interface Claim {
  readonly owner: string;
  readonly leaseUntil: Date;
}

/**
 * What the claim found: our new claim, or the key's existing record (`record`, unchanged by the
 * claim), or neither (`record: undefined`: the claim met a duplicate key error the server did
 * not retry; read the record).
 */
type ClaimOrRecord =
  | { readonly claim: Claim; readonly record?: never }
  | { readonly claim?: never; readonly record: IdempotencyRecord | undefined };

/**
 * Claims the key, or reads its record, in ONE command:
 * `findAndModify({ _id: key }, { $setOnInsert: claim }, upsert, new: false)`.
 *
 * - No record: the upsert inserts `{ _id: key, ...claim }` and answers `value: null` (the
 *   document before the write: none). That is our claim, made by the same single-document
 *   insert as before.
 * - A record: `$setOnInsert` "does nothing" when the upsert does not insert (MongoDB manual,
 *   reference/operator/update/setOnInsert), so nothing is written (no oplog entry, no write
 *   conflict with a transaction holding the record through its fence) and the answer is the
 *   record as stored: the read that used to be a second command.
 * - Two first calls at once: the `_id` index admits one insert. The loser's upsert meets the
 *   duplicate key, which the server retries as an update when the filter is an equality on the
 *   violated unique index's fields only and the update leaves them alone (MongoDB 4.2+,
 *   SERVER-37124; manual, findAndModify, "Upsert with Duplicate Values"): it then finds the
 *   winner's record. If a server does not retry, the E11000 reaches us: that is the old
 *   insert's answer, and the record is read with a `find`, as before.
 * - A driver retry of the findAndModify (retryable write) is answered from the first
 *   execution: an upsert that inserted answers `value: null` again (mongod
 *   write_ops_retryability.cpp), so a lost reply never turns our claim into a duplicate.
 */
async function claimOrRead(
  records: Collection<IdempotencyRecord>,
  s: Settings,
): Promise<ClaimOrRecord> {
  const owner = randomUUID();
  const now = Date.now();
  const leaseUntil = new Date(now + s.leaseMs);
  try {
    const existing = await records.findOneAndUpdate(
      { _id: s.key },
      {
        $setOnInsert: {
          state: IdempotencyState.InProgress,
          ...(s.fingerprint === undefined ? {} : { fingerprint: s.fingerprint }),
          owner,
          leaseUntil,
          createdAt: new Date(now),
          expiresAt: new Date(now + s.retentionMs),
        },
      },
      {
        upsert: true,
        returnDocument: 'before',
        // In transaction mode the fence reads the claim from the transaction's snapshot, which
        // with a majority/snapshot read concern only contains majority-committed writes.
        ...(s.client === undefined ? {} : { writeConcern: { w: 'majority' } }),
      },
    );
    return existing === null ? { claim: { owner, leaseUntil } } : { record: existing };
  } catch (error) {
    if (isDuplicateKeyError(error)) return { record: undefined };
    throw error;
  }
}

/**
 * Takes over a claim whose lease expired: only if it is still the same claim (`owner`) and
 * still expired by our clock. Undefined when another caller changed it first; `'held'` when the
 * holder's transaction holds the record (transaction mode) beyond our time limit.
 */
async function takeOver(
  records: Collection<IdempotencyRecord>,
  s: Settings,
  previousOwner: string,
  remainingWaitMs: number,
): Promise<Claim | 'held' | undefined> {
  const owner = randomUUID();
  const now = Date.now();
  const leaseUntil = new Date(now + s.leaseMs);
  try {
    const taken = await records.findOneAndUpdate(
      {
        _id: s.key,
        state: IdempotencyState.InProgress,
        owner: previousOwner,
        leaseUntil: { $lte: new Date(now) },
      },
      { $set: { owner, leaseUntil, expiresAt: new Date(now + s.retentionMs) } },
      {
        maxTimeMS:
          s.wait === undefined ? TAKEOVER_MAX_TIME_MS : Math.max(1, Math.ceil(remainingWaitMs)),
      },
    );
    return taken === null ? undefined : { owner, leaseUntil };
  } catch (error) {
    if (isMaxTimeMSExpired(error)) return 'held';
    throw error;
  }
}

/** The update that stores `value` and marks the claim completed. */
function completion(value: unknown, retentionMs: number): Document {
  const now = Date.now();
  return {
    $set: {
      state: IdempotencyState.Completed,
      // `undefined` is not stored: the replay reads a missing field back as undefined.
      ...(value === undefined ? {} : { value }),
      completedAt: new Date(now),
      expiresAt: new Date(now + retentionMs),
    },
    $unset: { leaseUntil: '', fence: '' },
  };
}

/** Filter that matches only our own, still running claim. */
function ours(key: string, owner: string): Document {
  return { _id: key, owner, state: IdempotencyState.InProgress };
}

/**
 * Releases our claim after a failure. Its own failure is not reported (see the contract).
 *
 * Bounded by RELEASE_MAX_TIME_MS: in transaction mode a commit that failed without a label
 * (the transaction left open on the server) still holds the record through the fence, and a
 * plain delete would wait until the server times that transaction out
 * (`transactionLifetimeLimitSeconds`, 60 s by default). Past the bound the key is left to
 * free itself: the server aborts the transaction, then our lease ends.
 */
async function release(records: Collection<IdempotencyRecord>, key: string, owner: string) {
  try {
    await records.deleteOne(ours(key, owner), { maxTimeMS: RELEASE_MAX_TIME_MS });
  } catch {
    // The lease ends on its own; the caller's error matters more than this one.
  }
}

/**
 * fn's context without `client`. Its `signal` (aborted when our lease ends) is made on first
 * read: most `fn`s never look at it, and an AbortController plus a lease timer per call was a
 * large share of the primitive's own CPU. Read while the lease runs, it aborts when the lease
 * ends, as before; read after the lease ended (fn still running), it is already aborted, as the
 * timer would have left it; read after `end()` (fn returned or threw), it never aborts.
 */
function leaseContext(
  s: Settings,
  leaseUntil: Date,
): { readonly context: IdempotencyContext; end(): void } {
  let controller: AbortController | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;
  const abort = (lease: AbortController) =>
    lease.abort(
      new MongoAtomicsError(
        `${PRIMITIVE}: the lease on key ${JSON.stringify(s.key)} ended (leaseMs ${s.leaseMs}); another caller may take it over and run fn. Stop fn's work on this signal, and raise leaseMs above fn's worst-case duration`,
      ),
    );
  return {
    context: {
      get signal(): AbortSignal {
        if (controller === undefined) {
          const lease = new AbortController();
          controller = lease;
          const remaining = leaseUntil.getTime() - Date.now();
          if (!ended) {
            if (remaining <= 0) abort(lease);
            else timer = setTimeout(() => abort(lease), remaining);
          }
        }
        return controller.signal;
      },
    },
    end() {
      ended = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}

/**
 * Runs `fn` under our claim and stores its value. Undefined when, in transaction mode, the
 * fence found the claim gone before `fn` ran: the caller then reads the record again.
 */
async function execute<T>(
  records: Collection<IdempotencyRecord>,
  s: Settings,
  held: Claim,
  tookOver: boolean,
): Promise<IdempotencyResult<T> | undefined> {
  if (s.client !== undefined) return executeInTransaction<T>(records, s, s.client, held, tookOver);

  const lease = leaseContext(s, held.leaseUntil);
  const fn = s.fn as WithIdempotencyKeyOptions<T>['fn'];
  let value: T;
  try {
    value = await fn(lease.context);
  } catch (error) {
    lease.end();
    await release(records, s.key, held.owner);
    throw error;
  }
  lease.end();
  let stored: { matchedCount: number };
  try {
    stored = await records.updateOne(ours(s.key, held.owner), completion(value, s.retentionMs));
  } catch (error) {
    // A write concern error comes after the write applied on the primary: the record says
    // `completed` (duplicates replay it) unless a failover rolls it back. Matching nothing
    // is a lost lease, whatever the write concern did.
    const matched = writeConcernErrorMatched(error);
    if (matched === 0) return { outcome: 'executed', value, leaseLost: true, tookOver };
    // fn ran: never let this read as "nothing happened", and do not release the key (an
    // immediate retry would run fn again); unless written, it stays in progress until the
    // lease ends. A lost reply may still have stored the result: say so, do not guess.
    const written = matched !== undefined ? true : writeMayHaveApplied(error) ? 'unknown' : false;
    throw new IdempotencyResultNotStoredError(s.key, value, error, written);
  }
  return { outcome: 'executed', value, leaseLost: stored.matchedCount === 0, tookOver };
}

async function executeInTransaction<T>(
  records: Collection<IdempotencyRecord>,
  s: Settings,
  client: MongoClient,
  held: Claim,
  tookOver: boolean,
): Promise<IdempotencyResult<T> | undefined> {
  const fn = s.fn as WithIdempotencyKeyTransactionOptions<T>['fn'];
  let value: T;
  try {
    value = await withRetryingTransaction(
      client,
      async (session, { attempt, signal }) => {
        // The fence: still ours in this snapshot, and from here on held by this transaction.
        const fenced = await records.updateOne(
          ours(s.key, held.owner),
          { $inc: { fence: 1 } },
          { session },
        );
        if (fenced.matchedCount === 0) throw new LeaseLostSignal();
        const result = await fn({ session, signal, attempt });
        const stored = await records.updateOne(
          ours(s.key, held.owner),
          completion(result, s.retentionMs),
          { session },
        );
        if (stored.matchedCount === 0) {
          // The fence holds the record, so only fn itself (through the session) can have
          // changed it. Abort: the business writes must not commit without their record.
          throw new MongoAtomicsError(
            `${PRIMITIVE}: the record of key ${JSON.stringify(s.key)} was changed inside the transaction (does fn write to the idempotency collection?); the transaction was aborted. Keep fn's writes out of the idempotency collection`,
          );
        }
        return result;
      },
      s.transaction,
    );
  } catch (error) {
    if (error instanceof LeaseLostSignal) return undefined;
    // Aborted (or a commit that gave up): a committed completion would not match `ours`.
    await release(records, s.key, held.owner);
    throw error;
  }
  return { outcome: 'executed', value, leaseLost: false, tookOver };
}

/**
 * Creates the TTL index that deletes expired idempotency records: `{ expiresAt: 1 }` with
 * `expireAfterSeconds: 0`. Call it once at startup (it is idempotent; one `createIndexes`).
 * Without it records are never deleted. Resolves to the index name.
 *
 * @example
 * ```ts
 * const idempotencyKeys = db.collection<IdempotencyRecord>('idempotencyKeys');
 * await ensureIdempotencyIndexes(idempotencyKeys); // at startup, before serving requests
 * ```
 */
export async function ensureIdempotencyIndexes(collection: IdempotencyCollection): Promise<string> {
  validator('ensureIdempotencyIndexes').collection(collection as Collection);
  return (collection as Collection<IdempotencyRecord>).createIndex(
    { expiresAt: 1 },
    { expireAfterSeconds: 0 },
  );
}
