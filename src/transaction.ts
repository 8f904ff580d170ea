/**
 * withRetryingTransaction: run a callback in a MongoDB transaction, retrying it the way the
 * transactions convenient API specification says, within a budget of time AND attempts.
 *
 * Contract
 * - Starts its own session (a `session` option is refused) and ends it in every case.
 * - Each attempt: `startTransaction(transactionOptions)`, `fn(session, { attempt, signal })`,
 *   then `commitTransaction` unless the callback committed or aborted the transaction itself.
 * - TransientTransactionError (from the callback or from the commit): the transaction is aborted
 *   if still open and the WHOLE callback runs again, after a backoff. Without a `backoff` option
 *   the wait is measured in the client's transaction holding time and grows with the number of
 *   its calls waiting to retry (adaptive policy, see ADAPTIVE). With one, exactly the sequence
 *   it sets.
 * - UnknownTransactionCommitResult on commit, except MaxTimeMSExpired (50): ONLY the commit is
 *   sent again (the driver adds `w: "majority"` to a repeated commit), after a backoff.
 * - A cleared connection pool (the driver's MongoPoolClearedError, label `PoolRequestedRetry`,
 *   no TransientTransactionError): from the callback, the transaction is aborted and the WHOLE
 *   callback runs again (unless the error also says UnknownTransactionCommitResult: then it
 *   comes from a commit the callback sent itself, which may have applied, and is rethrown);
 *   from the commit, ONLY the commit is sent again (below). Reason `poolCleared` in `onRetry`;
 *   it counts against the budget like any retry.
 * - Anything else from the callback: the transaction is aborted and the error is rethrown
 *   unchanged (the same object). From the commit: rethrown unchanged.
 * - Gives up with RetryBudgetExhaustedError (`cause`: the last error) when `maxAttempts` tries
 *   were made, when the next backoff would end past `timeoutMs`, or when the server aborted the
 *   transaction before the callback finished twice in a row (`abortedBeforeCommit`, see below).
 * - A standalone mongod: TransactionsUnsupportedError, the server's refusal as `cause`.
 * - `signal` aborted: rejects with `signal.reason` before the first attempt, before a commit and
 *   during a backoff, aborting the open transaction. Once a commit was sent it may have applied.
 *
 * Round trips: success is the callback's commands + 1 `commitTransaction` (none when the
 * callback sent no command: the driver ends an empty transaction locally). A transient failure
 * inside the callback adds 1 `abortTransaction` (only when the transaction reached the server)
 * and a full re-run; at commit it adds the re-run only (the server has already aborted it). An
 * unknown commit result adds 1 `commitTransaction` per retry; the driver itself sends a commit
 * that failed with a retryable error (RetryableWriteError) once more before we see it. A
 * statement that waited while the pool was cleared was never sent: it adds 1
 * `abortTransaction` (only when earlier statements reached the server) and a full re-run; a
 * commit that waited so adds 1 `commitTransaction`.
 *
 * Why not `session.withTransaction`: the driver retries for 120 s with no attempt cap, no
 * backoff before 7.1 (since then one that restarts from its first step at every call, so
 * contending writers keep colliding), no retry hook, no AbortSignal, no attempt number for the callback to reset
 * its state, a bare server error on a standalone, and it loops until its deadline when the
 * callback swallows a server error (below). This runner has all of those.
 *
 * The swallowed-error loop (transactions convenient API spec, "Handling errors inside the
 * callback"): a failed command inside a transaction aborts it on the server, with no label when
 * it is, say, a DuplicateKey (E11000). A callback that catches that error and carries on gets
 * NoSuchTransaction (251, transient) from its next command or from the commit, and a retry loop
 * re-runs the same callback into the same error until its deadline. Two attempts in a row ending
 * in NoSuchTransaction stop this runner with reason `abortedBeforeCommit`. One is retried: a
 * failover or an administrator's killSessions ends a transaction the same way, once.
 *
 * A cleared pool: when one operation on a client hits a network error (or "shutting down"), the
 * driver clears that server's connection pool, and every command waiting for a connection of it
 * fails with MongoPoolClearedError without having been sent. Outside a transaction the driver
 * retries such a command itself; inside one it cannot (a transaction's statement must not be
 * re-sent on its own), and the driver does not label it transient. Re-running the whole
 * transaction is safe: the failed statement never reached the server, the earlier ones are
 * discarded with the aborted transaction. On the commit the runner is more careful: the error
 * says that THIS send of commitTransaction never left, not that no earlier one did (the driver
 * re-sends a commit once after a retryable error, and the runner re-sends it after an unknown
 * result), so the transaction may already be committed and re-running the callback could apply
 * it twice. Re-sending the commit alone is safe in every case: if an earlier send committed,
 * the server answers ok again for the same transaction; if none arrived, the transaction is
 * still open and this commits it; if the server has aborted it meanwhile, it answers
 * NoSuchTransaction (transient) and the whole callback runs again. Giving up then reports
 * `commitOutcomeUnknown` only when an earlier send of the commit may have applied. (In
 * practice the driver retries a pool-cleared commit itself once and labels a second failure
 * UnknownTransactionCommitResult; the runner sees a bare one only when the driver made no
 * retry, e.g. driver 7 with `maxAdaptiveRetries: 0`.)
 *
 * Not supported by MongoDB: concurrent operations on the session inside the callback
 * (`Promise.all`, `Promise.race`…). Run the callback's commands one after another.
 *
 * Needs a replica set (a single node is enough) or a sharded cluster.
 */
import type { ClientSession, MongoClient, TransactionOptions } from 'mongodb';
import {
  ErrorLabel,
  hasErrorLabel,
  isMaxTimeMSExpired,
  isNoSuchTransaction,
  isPoolCleared,
  isTransactionsUnsupported,
} from './driver.js';
import { GiveUpReason, RetryBudgetExhaustedError, TransactionsUnsupportedError } from './errors.js';
import { describe, isPlainObject, MAX_NAME_LENGTH, type Validator, validator } from './validate.js';

const PRIMITIVE = 'withRetryingTransaction';
const v = validator(PRIMITIVE);

/** The time budget the transactions convenient API specification gives `withTransaction`. */
const DEFAULT_TIMEOUT_MS = 120_000;
/**
 * Enough tries for writers contending on one document to each get a turn: under "first updater
 * wins" every round commits at least one of them, so 100 covers dozens of contenders, while a
 * systematic failure stops after 100 callback runs instead of running for two minutes.
 */
const DEFAULT_MAX_ATTEMPTS = 100;
/**
 * The backoff of the transactions convenient API specification ("Sequence of Actions", step
 * 2.1): before retry k (k = 1 on the first retry) wait `jitter × min(5 × 1.5^(k − 1), 500)` ms,
 * so the first retry waits up to 5 ms. Node driver 7.1+ (`ClientSession.withTransaction`,
 * src/sessions.ts) computes `1.5^k` instead, one step further along (up to 7.5 ms first): a
 * deviation of that driver from the specification, not followed here. Used when `backoff` is
 * given (its missing fields take these values); without it the adaptive policy applies.
 */
const DEFAULT_BACKOFF = {
  initialDelayMs: 5,
  factor: 1.5,
  maxDelayMs: 500,
  jitter: 'full',
} as const satisfies Required<TransactionBackoff>;
/**
 * The adaptive policy (the default when `backoff` is not given). Writers contending on the same
 * documents under "first updater wins" are served one at a time: each holds the documents for
 * one transaction's duration D, and a conflicting retry fails at its first write, wasting an
 * attempt. A retry is worth sending when the holder is done and the retriers queued before it
 * have had their turn: after about D × its queue position. Waits counted in milliseconds (the
 * specification's 5 ms first step) are many holding times on a fast server, which leaves the
 * documents idle, and a fraction of one far away, which makes everyone collide again.
 *
 * So one state is kept per MongoClient (all calls through that client share it):
 * - `holdMs`: D, the duration of a committed attempt (start of the transaction to the commit's
 *   reply), smoothed over the client's commits (weight `holdSmoothing` for the newest); before
 *   the client's first commit, the duration of the attempt that just failed (at least a round
 *   trip, a conflict fails at its first write);
 * - `waiting`: how many of its calls are waiting to retry after a TransientTransactionError.
 * A transient retry of try n waits a random time in
 * `[0, min(holdMs × max(spread × (waiting + 1), 1.5^(n − 1)), 500))` ms: the retriers this
 * client knows of are spread over `spread` times the time it takes to serve them all, so about
 * one in `spread` comes back while the documents are held. The per-call term `1.5^(n − 1)`
 * takes over when the contenders are elsewhere (other processes, other clients): a call that
 * keeps meeting conflicts alone still backs off exponentially, in holding times. A first
 * attempt never waits: uncontended calls cost what they did.
 */
const ADAPTIVE = {
  /**
   * How many holding times per waiting retrier a retry is spread over. Measured at 32 callers
   * on 4 hot accounts (offline server, `npm run bench -- --only contention`, median of 3 runs,
   * each interleaved with the driver's withTransaction): 1 gave 2.6 attempts per commit (one
   * run), 2 gave 1.9 at 2.3× the driver's commits/s, 3 gave 1.6 at 1.9× (p99 381 ms against
   * 900). 3 keeps a margin under 2 attempts per commit on a loaded machine.
   */
  spread: 3,
  /** Weight of the newest commit in `holdMs` (exponential smoothing). */
  holdSmoothing: 0.1,
  /** Growth per try of the per-call term, as in the specification's sequence. */
  factor: DEFAULT_BACKOFF.factor,
} as const;

/** The adaptive policy's state for one MongoClient (see ADAPTIVE). */
interface Contention {
  /** Smoothed duration of a committed attempt, ms; 0 until the client's first commit. */
  holdMs: number;
  /** Calls of this client now waiting to retry after a TransientTransactionError. */
  waiting: number;
}
/** Keyed by client: the state goes when the client is collected. */
const contentionByClient = new WeakMap<MongoClient, Contention>();

function contentionOf(client: MongoClient): Contention {
  let state = contentionByClient.get(client);
  if (state === undefined) {
    state = { holdMs: 0, waiting: 0 };
    contentionByClient.set(client, state);
  }
  return state;
}

/**
 * The adaptive policy's wait before retrying try `failedAttempt` after a transient error, whose
 * attempt lasted `attemptMs` (see ADAPTIVE).
 */
function adaptiveDelay(
  contention: Readonly<Contention>,
  failedAttempt: number,
  attemptMs: number,
): number {
  const unit = contention.holdMs > 0 ? contention.holdMs : attemptMs;
  const turns = Math.max(
    ADAPTIVE.spread * (contention.waiting + 1),
    ADAPTIVE.factor ** (failedAttempt - 1),
  );
  return Math.random() * Math.min(unit * turns, DEFAULT_BACKOFF.maxDelayMs);
}

/** Consecutive attempts ended by NoSuchTransaction before giving up (`abortedBeforeCommit`). */
const ABORTED_BEFORE_COMMIT_LIMIT = 2;
/** setTimeout's largest delay; longer ones fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** What the callback learns about the attempt it runs in. */
export interface TransactionAttempt {
  /**
   * 1-based number of this try. Every try counts, a retry of the commit alone included, so
   * after a commit retry the callback's next run skips a number (1, then 3). `attempt > 1`
   * means state kept outside the transaction from an earlier run must be reset.
   */
  readonly attempt: number;
  /**
   * Aborted when the caller's `options.signal` aborts (reason: its reason) or the time budget
   * runs out (reason: a RetryBudgetExhaustedError with reason `'timeout'`). Pass it to
   * long-running work; the same signal serves every attempt of one call. It is made on first
   * read (a callback that never reads it costs no AbortController); read late, it already shows
   * an abort or a deadline that came before.
   */
  readonly signal: AbortSignal;
}

/**
 * The callback's TransactionAttempt: `signal` is a getter on the prototype, so the controller
 * behind it is made on first read. (An object literal with an own getter, built per attempt,
 * cost V8 about 60 µs per call, several times what the AbortController did.) Destructuring
 * `{ attempt, signal }` works as on a plain object; a spread copies `attempt` only.
 */
class Attempt implements TransactionAttempt {
  readonly #signalOf: () => AbortSignal;
  constructor(
    readonly attempt: number,
    signalOf: () => AbortSignal,
  ) {
    this.#signalOf = signalOf;
  }
  get signal(): AbortSignal {
    return this.#signalOf();
  }
}

/** Why a transaction is being retried. */
export const TransactionRetryReason = {
  /** TransientTransactionError (e.g. WriteConflict 112): the whole callback runs again. */
  TransientTransactionError: 'transientTransactionError',
  /** UnknownTransactionCommitResult on commit (network error, failover): the commit is re-sent. */
  UnknownCommitResult: 'unknownCommitResult',
  /**
   * The driver's MongoPoolClearedError (label `PoolRequestedRetry`): a command waited for a
   * connection of a pool that another operation's network error cleared, so it never reached
   * the server. From the callback: the whole callback runs again. From the commit: the commit
   * alone is sent again (see the module comment).
   */
  PoolCleared: 'poolCleared',
} as const;
/** One of the {@link TransactionRetryReason} values: why a transaction is being retried. */
export type TransactionRetryReason =
  (typeof TransactionRetryReason)[keyof typeof TransactionRetryReason];

/** Passed to `onRetry` before each backoff. */
export interface TransactionRetryEvent {
  /** The try that failed (1-based); the next one is `attempt + 1`. */
  readonly attempt: number;
  /**
   * Why it is retried: `'transientTransactionError'` (the whole callback runs again),
   * `'unknownCommitResult'` (the commit alone is re-sent) or `'poolCleared'`. See
   * {@link TransactionRetryReason}.
   */
  readonly reason: TransactionRetryReason;
  /** The error that caused the retry, as the driver raised it. */
  readonly error: unknown;
  /** Milliseconds the runner waits before the next try. */
  readonly delayMs: number;
}

/**
 * Exponential backoff between tries: before try `n + 1` the runner waits
 * `min(initialDelayMs × factor^(n − 1), maxDelayMs)` ms, or with full jitter a random time in
 * `[0, that)`. Jitter spreads contending writers apart so they stop colliding. The defaults give
 * the transactions convenient API specification's sequence (step 2.1: up to 5, 7.5, 11.25 … ms,
 * at most 500); Node driver 7.1+ waits one step further along (up to 7.5 ms first).
 */
export interface TransactionBackoff {
  /** @default 5 */
  readonly initialDelayMs?: number;
  /** @default 1.5 */
  readonly factor?: number;
  /** @default 500 */
  readonly maxDelayMs?: number;
  /** `'full'`: random in [0, computed); `'none'`: exactly the computed delay. @default 'full' */
  readonly jitter?: 'full' | 'none';
}

/** The `startTransaction` options this runner passes through. */
export type RetryingTransactionOptions = Pick<
  TransactionOptions,
  'readConcern' | 'writeConcern' | 'readPreference' | 'maxCommitTimeMS'
>;

/**
 * Options of withRetryingTransaction (also the `transaction` option of guardedDecrementAll and
 * withIdempotencyKey in transaction mode): the retry budget, backoff, hooks and signal.
 */
export interface WithRetryingTransactionOptions {
  /**
   * Time budget in ms, from the call to giving up. No try starts and no backoff ends after it.
   * A callback still running at the deadline is not interrupted (its `signal` aborts), and if it
   * completes, its transaction is committed: the budget limits retries, not finished work.
   * @default 120000 (the specification's withTransaction budget)
   */
  readonly timeoutMs?: number;
  /**
   * Most tries (callback runs plus commit-only retries), the first included; `Infinity` leaves
   * only the time budget. @default 100
   */
  readonly maxAttempts?: number;
  /**
   * Delay between tries, exactly as set; see TransactionBackoff (`{}` gives the
   * specification's sequence). When absent, the adaptive policy: retry n after a transient
   * error waits a random time under `min(hold × max(3 × (waiting + 1), 1.5^(n − 1)), 500)` ms,
   * where `hold` is the smoothed duration of a committed transaction on this MongoClient and
   * `waiting` the number of its calls waiting to retry (calls without `backoff`). Waits scale
   * with the server's speed and the queue instead of fixed 5 ms steps; without conflicts
   * nothing waits. Commit-only retries (unknown commit result, cleared pool) wait the
   * specification's sequence for the call's attempt number.
   * @default the adaptive policy
   */
  readonly backoff?: TransactionBackoff;
  /**
   * Called before each backoff, awaited. The library never logs: this is where to. An error it
   * throws (or a promise it rejects) ends the call with that error: a failing hook is a bug to
   * see, not to hide.
   */
  readonly onRetry?: (event: TransactionRetryEvent) => void | Promise<void>;
  /** Cancels the call between tries (see TransactionAttempt.signal for inside the callback). */
  readonly signal?: AbortSignal;
  /**
   * readConcern (`'local'`, `'majority'` or `'snapshot'`, the levels a transaction takes, or
   * `{ level }`), writeConcern (`{ w, j, journal, fsync, wtimeout, wtimeoutMS }` only; `w` ≥ 1
   * or a mode name: a session refuses an unacknowledged write concern), readPreference (must be
   * primary), maxCommitTimeMS.
   */
  readonly transactionOptions?: RetryingTransactionOptions;
}

interface Settings {
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  /** Undefined: the adaptive policy (no `backoff` given). */
  readonly backoff: Required<TransactionBackoff> | undefined;
  readonly onRetry: ((event: TransactionRetryEvent) => void | Promise<void>) | undefined;
  readonly signal: AbortSignal | undefined;
  readonly transactionOptions: RetryingTransactionOptions | undefined;
}

const KNOWN_OPTIONS = [
  'timeoutMs',
  'maxAttempts',
  'backoff',
  'onRetry',
  'signal',
  'transactionOptions',
] as const;
const KNOWN_BACKOFF = ['initialDelayMs', 'factor', 'maxDelayMs', 'jitter'] as const;
const TRANSACTION_READ_CONCERNS = ['local', 'majority', 'snapshot'] as const;
/** The write concern settings the driver reads (WriteConcernSettings, drivers 6 and 7). */
const WRITE_CONCERN_KEYS = ['w', 'j', 'journal', 'wtimeout', 'wtimeoutMS', 'fsync'] as const;
const KNOWN_TRANSACTION_OPTIONS = [
  'readConcern',
  'writeConcern',
  'readPreference',
  'maxCommitTimeMS',
] as const;

function nonNegative(value: unknown, option: string, vv: Validator): number {
  const n = vv.finiteNumber(value, option);
  if (n < 0) vv.fail(option, `must be ≥ 0, got ${describe(value)}`);
  return n;
}

/** Validates a backoff option with the calling primitive's validator (for its error names). */
export function validateBackoff(vv: Validator, value: unknown): Required<TransactionBackoff> {
  if (value === undefined) return DEFAULT_BACKOFF;
  if (!isPlainObject(value)) return vv.fail('backoff', `must be an object, got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!(KNOWN_BACKOFF as readonly string[]).includes(key)) {
      vv.fail(`backoff.${key}`, `is not a backoff option (known: ${KNOWN_BACKOFF.join(', ')})`);
    }
  }
  const factor =
    value.factor === undefined
      ? DEFAULT_BACKOFF.factor
      : vv.finiteNumber(value.factor, 'backoff.factor');
  if (factor < 1) vv.fail('backoff.factor', `must be ≥ 1, got ${describe(value.factor)}`);
  // `=== undefined`, not `??`: a null jitter is a bad value, not an absent one.
  const jitter = value.jitter === undefined ? DEFAULT_BACKOFF.jitter : value.jitter;
  if (jitter !== 'full' && jitter !== 'none') {
    vv.fail('backoff.jitter', `must be 'full' or 'none', got ${describe(jitter)}`);
  }
  return {
    initialDelayMs:
      value.initialDelayMs === undefined
        ? DEFAULT_BACKOFF.initialDelayMs
        : nonNegative(value.initialDelayMs, 'backoff.initialDelayMs', vv),
    factor,
    maxDelayMs:
      value.maxDelayMs === undefined
        ? DEFAULT_BACKOFF.maxDelayMs
        : nonNegative(value.maxDelayMs, 'backoff.maxDelayMs', vv),
    jitter: jitter as 'full' | 'none',
  };
}

export function isAbortSignal(value: unknown): value is AbortSignal {
  const candidate = value as Partial<AbortSignal> | null | undefined;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.aborted === 'boolean' &&
    typeof candidate.addEventListener === 'function' &&
    typeof candidate.removeEventListener === 'function'
  );
}

function modeOf(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? (value as { mode?: unknown }).mode : value;
}

/**
 * The values of a transaction's write concern. `w` is a number of members (≥ 1: the driver
 * refuses an unacknowledged write concern with a session, DRIVERS-456) or a mode name
 * ('majority', a tag set); the timeouts are whole milliseconds ≥ 0 (0: no timeout, so -0 is
 * 0); the flags are booleans (the driver also takes `fsync: 1`).
 */
function validateWriteConcern(writeConcern: Record<string, unknown>): void {
  const option = (key: string) => `transactionOptions.writeConcern.${key}`;
  const { w, j, journal, fsync, wtimeout, wtimeoutMS } = writeConcern;
  if (w !== undefined && typeof w !== 'string') v.integer(w, option('w'), 1);
  if (typeof w === 'string' && (w.length === 0 || w.length > MAX_NAME_LENGTH)) {
    v.fail(option('w'), `must be a non-empty mode name of at most ${MAX_NAME_LENGTH} characters`);
  }
  if (j !== undefined) v.boolean(j, option('j'));
  if (journal !== undefined) v.boolean(journal, option('journal'));
  if (fsync !== undefined && fsync !== 1) v.boolean(fsync, option('fsync'));
  if (wtimeout !== undefined) v.integer(wtimeout, option('wtimeout'), 0);
  if (wtimeoutMS !== undefined) v.integer(wtimeoutMS, option('wtimeoutMS'), 0);
}

function validateTransactionOptions(value: unknown): RetryingTransactionOptions | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) {
    return v.fail('transactionOptions', `must be an object, got ${describe(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!(KNOWN_TRANSACTION_OPTIONS as readonly string[]).includes(key)) {
      v.fail(
        `transactionOptions.${key}`,
        `is not accepted (known: ${KNOWN_TRANSACTION_OPTIONS.join(', ')})`,
      );
    }
  }
  const { readConcern, writeConcern, readPreference, maxCommitTimeMS } = value;
  if (readConcern !== undefined) {
    const level =
      typeof readConcern === 'object' && readConcern !== null
        ? (readConcern as { level?: unknown }).level
        : readConcern;
    // MongoDB manual, transactions and read concern: a transaction takes "local", "majority"
    // or "snapshot"; any other level fails on the server, after the session started.
    if (
      typeof level !== 'string' ||
      !(TRANSACTION_READ_CONCERNS as readonly string[]).includes(level)
    ) {
      v.fail(
        'transactionOptions.readConcern',
        `must be ${TRANSACTION_READ_CONCERNS.map((l) => `'${l}'`).join(', ')} or { level }, got ${describe(readConcern)}`,
      );
    }
  }
  if (writeConcern !== undefined) {
    if (!isPlainObject(writeConcern)) {
      return v.fail(
        'transactionOptions.writeConcern',
        `must be an object, got ${describe(writeConcern)}`,
      );
    }
    // The driver reads only these keys: anything else (`$gt`, `__proto__`) would be dropped
    // silently and the transaction committed with the default write concern.
    v.knownKeys(writeConcern, WRITE_CONCERN_KEYS, 'transactionOptions.writeConcern');
    validateWriteConcern(writeConcern);
  }
  // MongoDB manual, transactions: "Multi-document transactions that contain read operations
  // must use read preference primary." Anything else fails at the callback's first read.
  if (readPreference !== undefined && modeOf(readPreference) !== 'primary') {
    v.fail(
      'transactionOptions.readPreference',
      `must be 'primary' (transactions read from the primary), got ${describe(readPreference)}`,
    );
  }
  if (maxCommitTimeMS !== undefined)
    v.integer(maxCommitTimeMS, 'transactionOptions.maxCommitTimeMS', 1);
  return value as RetryingTransactionOptions;
}

function validate(
  client: unknown,
  fn: unknown,
  options: WithRetryingTransactionOptions | undefined,
): Settings {
  v.client(client as MongoClient);
  v.function(fn, 'fn');
  const o = options === undefined ? {} : v.options(options);
  if (Object.hasOwn(o, 'session')) {
    v.fail(
      'session',
      `is not accepted: ${PRIMITIVE} starts, owns and ends its own session; use the session it passes to the callback`,
    );
  }
  v.knownKeys(o, KNOWN_OPTIONS);

  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (o.timeoutMs !== undefined) {
    timeoutMs = v.positiveNumber(o.timeoutMs, 'timeoutMs');
    if (timeoutMs > MAX_TIMER_MS)
      v.fail('timeoutMs', `must be at most ${MAX_TIMER_MS} (~24.8 days)`);
  }
  let maxAttempts = DEFAULT_MAX_ATTEMPTS;
  if (o.maxAttempts !== undefined) {
    maxAttempts =
      o.maxAttempts === Number.POSITIVE_INFINITY
        ? o.maxAttempts
        : v.integer(o.maxAttempts, 'maxAttempts', 1);
  }
  const onRetry = o.onRetry === undefined ? undefined : v.function(o.onRetry, 'onRetry');
  if (o.signal !== undefined && !isAbortSignal(o.signal)) {
    v.fail('signal', `must be an AbortSignal, got ${describe(o.signal)}`);
  }
  return {
    timeoutMs,
    maxAttempts,
    // Given: exactly that sequence. Absent: the adaptive policy (see ADAPTIVE).
    backoff: o.backoff === undefined ? undefined : validateBackoff(v, o.backoff),
    onRetry,
    signal: o.signal,
    transactionOptions: validateTransactionOptions(o.transactionOptions),
  };
}

/** The delay before try `failedAttempt + 1`. */
export function backoffDelay(backoff: Required<TransactionBackoff>, failedAttempt: number): number {
  const computed = Math.min(
    backoff.initialDelayMs * backoff.factor ** (failedAttempt - 1),
    backoff.maxDelayMs,
  );
  return backoff.jitter === 'full' ? Math.random() * computed : computed;
}

/**
 * Resolves after `ms`, or rejects with `signal.reason` as soon as it aborts. Without a signal,
 * a plain timer: nothing can interrupt it, so nothing needs an AbortController.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal === undefined) {
      setTimeout(resolve, ms);
      return;
    }
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Aborts the session's transaction if the callback left it open. The driver already ignores
 * the server's answer to abortTransaction (transactions spec); a client-side failure here must
 * not hide the error that made us abort, and the server drops an abandoned transaction when the
 * session ends or at transactionLifetimeLimitSeconds.
 */
async function abortIfOpen(session: ClientSession): Promise<void> {
  if (!session.inTransaction()) return;
  try {
    await session.abortTransaction();
  } catch {
    // See above: the error being handled matters more than this one.
  }
}

/** The session is returned to the pool either way; its error says nothing about the outcome. */
async function endQuietly(session: ClientSession): Promise<void> {
  try {
    await session.endSession();
  } catch {
    // Nothing to report: the transaction's outcome is already settled.
  }
}

const ABORTED_BEFORE_COMMIT_MESSAGE =
  `the server had already aborted the transaction when the callback finished, ` +
  `${ABORTED_BEFORE_COMMIT_LIMIT} attempts in a row (NoSuchTransaction). Most likely the callback ` +
  'catches a server error (such as a duplicate key, E11000) and carries on: a failed command ' +
  'aborts the transaction on the server. Rethrow errors inside the callback, and check ' +
  'expected conflicts before writing instead. (A callback running longer than the server’s ' +
  'transactionLifetimeLimitSeconds ends the same way.)';

/**
 * Runs `fn` in a transaction and commits it, retrying on TransientTransactionError (the whole
 * callback) and UnknownTransactionCommitResult (the commit alone), with jittered exponential
 * backoff (by default adapted to the contention met through `client`), within `timeoutMs` and
 * `maxAttempts`. Resolves to the callback's value.
 *
 * The callback may run several times: keep side effects outside the database idempotent, or
 * reset them when `attempt > 1`. Pass `session` to every operation, one at a time, and let
 * server errors propagate (see the module comment on swallowed errors).
 *
 * @throws InvalidArgumentError before anything is sent, for invalid arguments.
 * @example
 * ```ts
 * interface Account { _id: string; balance: number }
 * const accounts = client.db('bank').collection<Account>('accounts');
 *
 * await withRetryingTransaction(
 *   client,
 *   async (session) => {
 *     await accounts.updateOne({ _id: from }, { $inc: { balance: -amount } }, { session });
 *     await accounts.updateOne({ _id: to }, { $inc: { balance: amount } }, { session });
 *   },
 *   { timeoutMs: 10_000, onRetry: (event) => metrics.increment(`txn.retry.${event.reason}`) },
 * );
 * ```
 *
 * @throws RetryBudgetExhaustedError (reason `timeout`, `maxAttempts`, `abortedBeforeCommit`,
 *   or `commitOutcomeUnknown` when an earlier send of the commit may have applied: check
 *   before doing the work again) with the last error as `cause`.
 * @throws TransactionsUnsupportedError on a standalone mongod.
 * @throws the callback's own error, unchanged, when it is not transient; a commit error that
 *   is not retryable, unchanged; `options.signal.reason` when the signal aborts.
 */
export async function withRetryingTransaction<T>(
  client: MongoClient,
  fn: (session: ClientSession, attempt: TransactionAttempt) => Promise<T>,
  options?: WithRetryingTransactionOptions,
): Promise<T> {
  const settings = validate(client, fn, options);
  const callerSignal = settings.signal;
  if (callerSignal?.aborted) throw callerSignal.reason;

  const started = performance.now();
  const elapsed = () => performance.now() - started;
  let attempt = 0;
  let lastError: unknown;

  const giveUp = (reason: GiveUpReason, message: string, cause: unknown) =>
    new RetryBudgetExhaustedError(`${PRIMITIVE}: ${message}`, {
      reason,
      attempts: attempt,
      elapsedMs: Math.round(elapsed()),
      cause,
    });
  // Each message says which limit was reached, then what to do about it.
  const timeLimit = () =>
    `gave up after ${attempt} attempt(s): the time budget of ${settings.timeoutMs} ms (timeoutMs) is spent`;
  const timeoutMessage = () =>
    `${timeLimit()}. Raise timeoutMs to allow more time, or make the transaction shorter or less contended`;
  const attemptLimit = () => `gave up after ${attempt} attempt(s) (maxAttempts)`;

  // One controller for the call: the callback's `signal`, and what interrupts a backoff. Made
  // only when something can listen to it (the callback reads `signal`, or the caller passed a
  // signal): most calls never need one, and it was most of the runner's own CPU. Its deadline
  // timer comes with it; without a controller, nothing observes the deadline between the
  // elapsed-time checks below, so nothing changes.
  let controller: AbortController | undefined;
  let budgetTimer: ReturnType<typeof setTimeout> | undefined;
  const budgetSpent = () => {
    const cause =
      lastError ??
      new Error(`the time budget ran out during attempt ${attempt}, before any attempt failed`);
    return giveUp(GiveUpReason.Timeout, timeoutMessage(), cause);
  };
  const onCallerAbort = () => controller?.abort(callerSignal?.reason);
  const signalOf = (): AbortSignal => {
    if (controller !== undefined) return controller.signal;
    const created = new AbortController();
    controller = created;
    // Whatever already happened, the signal shows at once, as if it had listened all along.
    if (callerSignal?.aborted) created.abort(callerSignal.reason);
    else if (elapsed() >= settings.timeoutMs) created.abort(budgetSpent());
    else {
      callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
      budgetTimer = setTimeout(() => created.abort(budgetSpent()), settings.timeoutMs - elapsed());
    }
    return created.signal;
  };
  if (callerSignal !== undefined) signalOf();
  const context = (n: number): TransactionAttempt => new Attempt(n, signalOf);
  const contention = settings.backoff === undefined ? contentionOf(client) : undefined;

  /**
   * Before try `attempt + 1`: throws when the budget is spent, else reports and waits.
   * `error` is what made try `attempt` fail.
   */
  const beforeRetry = async (
    reason: TransactionRetryReason,
    error: unknown,
    commitMayHaveApplied = false,
  ): Promise<void> => {
    lastError = error;
    if (callerSignal?.aborted) throw callerSignal.reason;
    // Giving up on a commit whose outcome is unknown must not read as "nothing happened".
    const spent = (why: GiveUpReason) => {
      const limit = why === GiveUpReason.Timeout ? timeLimit() : attemptLimit();
      const option = why === GiveUpReason.Timeout ? 'timeoutMs' : 'maxAttempts';
      if (commitMayHaveApplied) {
        return giveUp(
          GiveUpReason.CommitOutcomeUnknown,
          `${limit}, while the outcome of the commit was unknown: the transaction may have been committed. Check whether its writes were applied before doing the work again; raise ${option} to keep retrying the commit longer`,
          error,
        );
      }
      return giveUp(
        why,
        why === GiveUpReason.Timeout
          ? timeoutMessage()
          : `${limit}: every attempt ended in a retryable error (the last is the cause). Raise maxAttempts to allow more tries, or make the transaction less contended`,
        error,
      );
    };
    if (attempt >= settings.maxAttempts) throw spent(GiveUpReason.MaxAttempts);
    let delayMs: number;
    // Whether this wait is a place in the client's queue of retriers (see ADAPTIVE).
    let queued = false;
    if (contention === undefined)
      delayMs = backoffDelay(settings.backoff ?? DEFAULT_BACKOFF, attempt);
    else if (reason === TransactionRetryReason.TransientTransactionError) {
      delayMs = adaptiveDelay(contention, attempt, performance.now() - attemptStarted);
      queued = true;
    } else {
      // An unknown commit result or a cleared pool says nothing about contention.
      delayMs = backoffDelay(DEFAULT_BACKOFF, attempt);
    }
    // Never sleep past the deadline: a try that could not start in time is not worth the wait.
    if (elapsed() + delayMs >= settings.timeoutMs) throw spent(GiveUpReason.Timeout);
    await settings.onRetry?.({ attempt, reason, error, delayMs });
    if (elapsed() + delayMs >= settings.timeoutMs) throw spent(GiveUpReason.Timeout);
    // A controller exists when anything could interrupt the wait (the caller's signal); the
    // deadline cannot, as the wait ends before it.
    if (!queued || contention === undefined) return sleep(delayMs, controller?.signal);
    // Counted while it waits, so the retriers queued after it wait longer; uncounted however
    // the wait ends (an aborted signal included), or the client would wait for ghosts.
    contention.waiting += 1;
    try {
      await sleep(delayMs, controller?.signal);
    } finally {
      contention.waiting -= 1;
    }
  };

  // When the current try's transaction started: its duration is the adaptive policy's unit.
  let attemptStarted = started;
  const session = client.startSession();
  try {
    let abortedBeforeCommit = 0;
    for (;;) {
      attempt += 1;
      attemptStarted = performance.now();
      session.startTransaction(settings.transactionOptions);

      // Transactions convenient API spec, steps 5-7: run the callback.
      let result: T;
      try {
        result = await fn(session, context(attempt));
      } catch (error) {
        await abortIfOpen(session);
        if (isTransactionsUnsupported(error)) throw new TransactionsUnsupportedError(error);
        // Never sent (see the module comment): the whole transaction can run again. Unless it
        // is the commit the callback sent itself, re-sent by the driver after a first send
        // that may have applied (it then also carries UnknownTransactionCommitResult): that
        // is rethrown, as the specification says for a callback that committed (step 7.3).
        if (
          isPoolCleared(error) &&
          !hasErrorLabel(error, ErrorLabel.UnknownTransactionCommitResult)
        ) {
          abortedBeforeCommit = 0;
          await beforeRetry(TransactionRetryReason.PoolCleared, error);
          continue;
        }
        if (!hasErrorLabel(error, ErrorLabel.TransientTransactionError)) throw error;
        abortedBeforeCommit = isNoSuchTransaction(error) ? abortedBeforeCommit + 1 : 0;
        if (abortedBeforeCommit >= ABORTED_BEFORE_COMMIT_LIMIT) {
          throw giveUp(GiveUpReason.AbortedBeforeCommit, ABORTED_BEFORE_COMMIT_MESSAGE, error);
        }
        await beforeRetry(TransactionRetryReason.TransientTransactionError, error);
        continue;
      }

      // Step 8: the callback committed or aborted the transaction itself; respect that.
      if (!session.inTransaction()) return result;
      // A cancelled call must not commit: nothing has been written yet.
      if (callerSignal?.aborted) {
        await abortIfOpen(session);
        throw callerSignal.reason;
      }

      // Steps 9-10: commit; while its outcome is unknown, send the commit alone again.
      // Whether a send of this transaction's commit may have reached the server and applied.
      let commitMayHaveApplied = false;
      for (;;) {
        try {
          await session.commitTransaction();
          if (contention !== undefined) {
            // How long this transaction held its documents (commit retries included: a
            // holder whose commit is retried holds them that long too).
            const held = performance.now() - attemptStarted;
            contention.holdMs =
              contention.holdMs === 0
                ? held
                : contention.holdMs + ADAPTIVE.holdSmoothing * (held - contention.holdMs);
          }
          return result;
        } catch (error) {
          if (isTransactionsUnsupported(error)) throw new TransactionsUnsupportedError(error);
          if (
            hasErrorLabel(error, ErrorLabel.UnknownTransactionCommitResult) &&
            !isMaxTimeMSExpired(error)
          ) {
            abortedBeforeCommit = 0;
            commitMayHaveApplied = true;
            await beforeRetry(TransactionRetryReason.UnknownCommitResult, error, true);
            attempt += 1;
            continue;
          }
          // This send never left; an earlier one may have committed: the commit alone again
          // (module comment, "A cleared pool").
          if (isPoolCleared(error) && !hasErrorLabel(error, ErrorLabel.TransientTransactionError)) {
            abortedBeforeCommit = 0;
            await beforeRetry(TransactionRetryReason.PoolCleared, error, commitMayHaveApplied);
            attempt += 1;
            continue;
          }
          if (!hasErrorLabel(error, ErrorLabel.TransientTransactionError)) throw error;
          // The server aborted the transaction (it reports why with NoSuchTransaction).
          abortedBeforeCommit = isNoSuchTransaction(error) ? abortedBeforeCommit + 1 : 0;
          if (abortedBeforeCommit >= ABORTED_BEFORE_COMMIT_LIMIT) {
            throw giveUp(GiveUpReason.AbortedBeforeCommit, ABORTED_BEFORE_COMMIT_MESSAGE, error);
          }
          await beforeRetry(TransactionRetryReason.TransientTransactionError, error);
          // Out of the commit loop, to the end of the attempt: the whole callback runs again.
          // (A `break`, not a labelled `continue`: Stryker's instrumented copy of a labelled
          // loop does not compile.)
          break;
        }
      }
    }
  } finally {
    if (budgetTimer !== undefined) clearTimeout(budgetTimer);
    if (controller !== undefined) callerSignal?.removeEventListener('abort', onCallerAbort);
    await abortIfOpen(session);
    await endQuietly(session);
  }
}
