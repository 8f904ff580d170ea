/**
 * Leases with fencing tokens: one holder per name at a time, by the server's clock.
 *
 * The race it closes: the naive lock ("find the lock document, if it is free or its `expiresAt`
 * is in the past by MY clock, write my name into it") lets two processes both read "free" and
 * both write, and trusts each client's wall clock, so a client whose clock runs ahead takes a
 * lease that is still live. Even a correct lock is not enough: a holder paused past its lease
 * (a GC pause, a stalled network) wakes up still believing it holds the lease and writes over
 * its successor's work. Here every acquisition is ONE conditional upsert decided by the
 * server's clock (`$$NOW`), and returns a fencing token that increases with every acquisition of
 * the name; `fencedUpdate` refuses a write whose token is older than the newest one that wrote
 * the document, so the paused holder's late write is refused.
 *
 * The lease document (`{ _id: name, holder, token, expiresAt, … }`) lives in a collection the
 * caller dedicates to leases; see LeaseDocument.
 */
import { randomUUID } from 'node:crypto';
import type { ClientSession, Collection, Document, Filter, UpdateFilter } from 'mongodb';
import { isMongoAtomicsError, MongoAtomicsError } from './errors.js';
import { readWithVerdicts } from './failure-read.js';
import { checkOperatorUpdate } from './update-with-version.js';
import { describe, isPlainObject, MAX_NAME_LENGTH, type Validator, validator } from './validate.js';
import { getField, numericValue } from './values.js';

/**
 * The longest lease the library grants, in milliseconds: 2^31 − 1 (about 24.8 days), the
 * longest delay a JavaScript timer can wait, which withLease uses to abort its signal.
 */
export const MAX_LEASE_TTL_MS = 2_147_483_647;

/**
 * The document that records a lease, one per name, in a collection dedicated to leases. The
 * library writes every field; do not write them yourself.
 */
export interface LeaseDocument {
  /** The lease's name. */
  _id: string;
  /** Who holds it (a label for diagnostics), or null once released. */
  holder: string | null;
  /** The newest fencing token granted for this name: 1, 2, 3, … never reused. */
  token: number;
  /** When the lease ends, by the server's clock, or null once released. */
  expiresAt: Date | null;
  /** The holder whose expired lease the newest acquisition took over, or null. */
  takenOverFrom: string | null;
  /** Random id of the acquisition that granted the current token (how the caller knows it won). */
  grant: string | null;
  /** Random id of the newest successful renewal. */
  renewal?: string | null;
}

/** The reason a lease is no longer the caller's. */
export type LeaseLostReason =
  /** The token is still the newest, but its time ran out (by the server's clock). */
  | 'expired'
  /** Another acquisition took the lease over: a newer token exists. */
  | 'superseded'
  /** The lease was released, or this token never held it. */
  | 'released';

/** Options of acquireLease. */
export interface AcquireLeaseOptions {
  /**
   * Who asks: a label stored in the lease and reported to others (`held`) and to the next
   * acquirer after an expiry (`previousHolder`), e.g. `` `${hostname()}:${process.pid}` ``. It is
   * NOT an identity: the token is. A non-empty string of at most 1024 characters.
   */
  readonly holder: string;
  /**
   * How long the lease lasts from the moment the server grants it, in milliseconds: a whole
   * number from 1 to MAX_LEASE_TTL_MS.
   */
  readonly ttlMs: number;
  /** Run inside the caller's session or transaction. `undefined` runs without one. */
  readonly session?: ClientSession | undefined;
}

/** What acquireLease did, told by `outcome`. */
export type AcquireLeaseResult =
  | {
      /** The lease is the caller's until `expiresAt` (server time). */
      readonly outcome: 'acquired';
      /** The fencing token of this acquisition: greater than every earlier one for this name. */
      readonly token: number;
      /** When the lease ends, by the server's clock. */
      readonly expiresAt: Date;
      /** The holder whose expired (never released) lease this acquisition took over. */
      readonly previousHolder?: string;
      /** Absent on this outcome. */
      readonly holder?: never;
    }
  | {
      /** Someone holds a live lease (possibly a caller with the same `holder` label). */
      readonly outcome: 'held';
      /** The current holder's label. */
      readonly holder: string;
      /** When the current lease ends unless renewed, by the server's clock. */
      readonly expiresAt: Date;
      /** Absent on this outcome. */
      readonly token?: never;
      /** Absent on this outcome. */
      readonly previousHolder?: never;
    };

/** Options of renewLease. */
export interface RenewLeaseOptions {
  /** The token acquireLease returned. */
  readonly token: number;
  /** The new lease lasts this long from the moment the server renews it, in milliseconds. */
  readonly ttlMs: number;
}

/** What renewLease did, told by `outcome`. */
export type RenewLeaseResult =
  | {
      /** The lease is still the caller's, now until `expiresAt` (server time). */
      readonly outcome: 'renewed';
      /** When the lease expires, by the server's clock. */
      readonly expiresAt: Date;
      /** Absent on this outcome. */
      readonly reason?: never;
    }
  | {
      /** The lease is no longer the caller's; nothing changed. Stop the work it protects. */
      readonly outcome: 'lost';
      /** Why the lease is lost: it expired, a newer acquisition superseded it, or it was released. */
      readonly reason: LeaseLostReason;
      /** Absent on this outcome. */
      readonly expiresAt?: never;
    };

/** Options of releaseLease. */
export interface ReleaseLeaseOptions {
  /** The token acquireLease returned. */
  readonly token: number;
}

/** What releaseLease did, told by `outcome`. */
export type ReleaseLeaseResult =
  | {
      /** The caller's lease is free now; the next acquirer gets the next token. */
      readonly outcome: 'released';
    }
  | {
      /** The token does not hold the lease (taken over, already released); nothing changed. */
      readonly outcome: 'notHeld';
    };

const ACQUIRE_OPTIONS = ['holder', 'ttlMs', 'session'] as const;
const RENEW_OPTIONS = ['token', 'ttlMs'] as const;
const RELEASE_OPTIONS = ['token'] as const;

function checkName(v: Validator, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0)
    return v.fail('name', `must be a non-empty string, got ${describe(name)}`);
  if (name.length > MAX_NAME_LENGTH)
    v.fail('name', `must be at most ${MAX_NAME_LENGTH} characters, got ${name.length}`);
  return name;
}

function checkTtl(v: Validator, value: unknown, option: string): number {
  const ttl = v.integer(value, option, 1);
  if (ttl > MAX_LEASE_TTL_MS)
    v.fail(option, `must be at most ${MAX_LEASE_TTL_MS} (about 24.8 days), got ${ttl}`);
  return ttl;
}

function checkToken(v: Validator, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    return v.fail(
      'token',
      `must be a token acquireLease returned (a whole number ≥ 1), got ${describe(value)}`,
    );
  }
  return value;
}

function checkHolder(v: Validator, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0)
    return v.fail('holder', `must be a non-empty string, got ${describe(value)}`);
  if (value.length > MAX_NAME_LENGTH)
    v.fail('holder', `must be at most ${MAX_NAME_LENGTH} characters, got ${value.length}`);
  return value;
}

/** `expiresAt > $$NOW`: a missing or null `expiresAt` (released, new) is not live. */
const LIVE = { $gt: [{ $ifNull: ['$expiresAt', null] }, '$$NOW'] };
const FREE = { $not: [LIVE] };
const HELD_BY_SOMEONE = { $ne: [{ $ifNull: ['$holder', null] }, null] };

function tokenOf(doc: Document): number {
  const token = numericValue(doc.token);
  if (token === undefined || !Number.isSafeInteger(token)) {
    throw new MongoAtomicsError(
      `lease "${String(doc._id)}": the lease document holds ${describe(doc.token)} as its token; a lease collection must only be written by the lease functions`,
    );
  }
  return token;
}

function dateOf(doc: Document): Date {
  const expiresAt: unknown = doc.expiresAt;
  if (!(expiresAt instanceof Date)) {
    throw new MongoAtomicsError(
      `lease "${String(doc._id)}": the lease document holds ${describe(expiresAt)} as its expiresAt; a lease collection must only be written by the lease functions`,
    );
  }
  return expiresAt;
}

const isDuplicateKey = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 11000;

/**
 * Takes the lease `name` for `holder` if it is free, by the server's clock.
 *
 * - **Command**: one `findAndModify` on `{ _id: name }`, upsert, a pipeline update: if the
 *   lease is free (never taken, released, or `expiresAt <= $$NOW`) it becomes the caller's with
 *   `token` = previous token + 1 and `expiresAt` = `$$NOW + ttlMs`; else nothing changes. The
 *   client's clock is never read and no client date is sent.
 * - **Outcomes**: `acquired` (`token`, `expiresAt`, and `previousHolder` when an expired,
 *   never released lease was taken over) or `held` (someone's live lease: `holder`,
 *   `expiresAt`).
 * - **Tokens** increase by one with every acquisition of the name and are never reused: a
 *   release keeps the token, so the next acquirer gets the next one.
 * - **Not reentrant**: acquiring a live lease resolves `held` even when `holder` equals your own
 *   label (two processes often share a label, e.g. a host name). Extend your own lease with
 *   renewLease and its token.
 * - **Round trips**: 1 on every path. (Two first acquisitions of a new name racing may meet a
 *   duplicate key error where the server does not retry the upsert itself: then one more.)
 * - Works on a standalone server; joins the caller's transaction through `session`.
 *
 * @example
 * ```ts
 * const leases = db.collection<LeaseDocument>('leases');
 * const lease = await acquireLease(leases, 'nightly-report', { holder: 'worker-1', ttlMs: 30_000 });
 * if (lease.outcome === 'held') return; // someone else runs it
 * // … work, renewing with renewLease(leases, 'nightly-report', { token: lease.token, ttlMs })
 * await releaseLease(leases, 'nightly-report', { token: lease.token });
 * ```
 */
export async function acquireLease<TSchema extends Document = LeaseDocument>(
  collection: Collection<TSchema>,
  name: string,
  options: AcquireLeaseOptions,
): Promise<AcquireLeaseResult> {
  const v = validator('acquireLease');
  v.collection(collection);
  checkName(v, name);
  v.options(options);
  v.knownKeys(options, ACQUIRE_OPTIONS);
  const holder = checkHolder(v, options.holder);
  const ttlMs = checkTtl(v, options.ttlMs, 'ttlMs');
  const session = v.session(options.session, collection);
  const grant = randomUUID();
  const set = (value: unknown, otherwise: string) => ({ $cond: [FREE, value, otherwise] });
  const pipeline = [
    {
      $set: {
        holder: set({ $literal: holder }, '$holder'),
        token: set({ $add: [{ $ifNull: ['$token', 0] }, 1] }, '$token'),
        expiresAt: set({ $add: ['$$NOW', ttlMs] }, '$expiresAt'),
        takenOverFrom: set({ $cond: [HELD_BY_SOMEONE, '$holder', null] }, '$takenOverFrom'),
        grant: set({ $literal: grant }, '$grant'),
      },
    },
  ];
  const send = () =>
    collection.findOneAndUpdate({ _id: name } as Filter<TSchema>, pipeline, {
      upsert: true,
      returnDocument: 'after',
      ...(session === undefined ? {} : { session }),
    });
  let doc: Document | null;
  try {
    doc = await send();
  } catch (error) {
    if (!isDuplicateKey(error) || session?.inTransaction() === true) throw error;
    doc = await send();
  }
  if (doc === null)
    throw new MongoAtomicsError(`acquireLease: the upsert of "${name}" returned no document`);
  if (doc.grant === grant) {
    const previous: unknown = doc.takenOverFrom;
    return {
      outcome: 'acquired',
      token: tokenOf(doc),
      expiresAt: dateOf(doc),
      ...(typeof previous === 'string' ? { previousHolder: previous } : {}),
    };
  }
  return { outcome: 'held', holder: String(doc.holder), expiresAt: dateOf(doc) };
}

/**
 * Extends the caller's lease to `$$NOW + ttlMs`, if its token still holds it by the server's
 * clock.
 *
 * - **Command**: one `findAndModify` on `{ _id: name }` (no upsert), a pipeline update that
 *   changes `expiresAt` only when `token` is the lease's token, the lease is held and
 *   `expiresAt > $$NOW`.
 * - **Outcomes**: `renewed` (`expiresAt`) or `lost` with `reason`: `expired` (your token, but
 *   its time ran out: stop, someone may take it any moment), `superseded` (taken over),
 *   `released` (released, or this token never held it). A lost lease is never revived.
 * - **Round trips**: 1 on every path.
 */
export async function renewLease<TSchema extends Document = LeaseDocument>(
  collection: Collection<TSchema>,
  name: string,
  options: RenewLeaseOptions,
): Promise<RenewLeaseResult> {
  const v = validator('renewLease');
  v.collection(collection);
  checkName(v, name);
  v.options(options);
  v.knownKeys(options, RENEW_OPTIONS);
  const token = checkToken(v, options.token);
  const ttlMs = checkTtl(v, options.ttlMs, 'ttlMs');
  const renewal = randomUUID();
  const mine = { $and: [{ $eq: ['$token', { $literal: token }] }, HELD_BY_SOMEONE, LIVE] };
  const doc = await collection.findOneAndUpdate(
    { _id: name } as Filter<TSchema>,
    [
      {
        $set: {
          expiresAt: { $cond: [mine, { $add: ['$$NOW', ttlMs] }, '$expiresAt'] },
          renewal: { $cond: [mine, { $literal: renewal }, '$renewal'] },
        },
      },
    ],
    { returnDocument: 'after' },
  );
  if (doc === null) return { outcome: 'lost', reason: 'released' };
  if (doc.renewal === renewal) return { outcome: 'renewed', expiresAt: dateOf(doc) };
  const current = tokenOf(doc);
  if (current > token) return { outcome: 'lost', reason: 'superseded' };
  if (current === token && typeof doc.holder === 'string')
    return { outcome: 'lost', reason: 'expired' };
  return { outcome: 'lost', reason: 'released' };
}

/**
 * Frees the caller's lease so that the next acquirer need not wait for it to expire.
 *
 * - **Command**: one `update` on `{ _id: name, token, holder ≠ null }` that sets `holder` and
 *   `expiresAt` to null. The token stays: the next acquirer gets the next one.
 * - **Outcomes**: `released`, or `notHeld` (the token was superseded or already released):
 *   a release never frees someone else's lease. A lease that expired but was not yet taken
 *   over is still released (nobody else holds it). Safe to repeat: a second release resolves
 *   `notHeld`.
 * - **Round trips**: 1 on every path.
 */
export async function releaseLease<TSchema extends Document = LeaseDocument>(
  collection: Collection<TSchema>,
  name: string,
  options: ReleaseLeaseOptions,
): Promise<ReleaseLeaseResult> {
  const v = validator('releaseLease');
  v.collection(collection);
  checkName(v, name);
  v.options(options);
  v.knownKeys(options, RELEASE_OPTIONS);
  const token = checkToken(v, options.token);
  const result = await collection.updateOne(
    { _id: name, token, holder: { $ne: null } } as unknown as Filter<TSchema>,
    { $set: { holder: null, expiresAt: null } } as unknown as UpdateFilter<TSchema>,
  );
  return result.matchedCount === 1 ? { outcome: 'released' } : { outcome: 'notHeld' };
}

/**
 * The signal's `reason` when withLease aborts it: the lease is, or may be, no longer yours.
 * Check with {@link isLeaseLostError}.
 */
export class LeaseLostError extends MongoAtomicsError {
  /** Always `'LeaseLostError'`. */
  override readonly name = 'LeaseLostError';
  /** The lease's name. */
  readonly lease: string;
  /**
   * `deadline`: no renewal succeeded within `ttlMs` of sending the last successful request (the
   * lease may have ended); otherwise what renewLease reported.
   */
  readonly reason: LeaseLostReason | 'deadline';

  constructor(lease: string, reason: LeaseLostReason | 'deadline') {
    super(
      reason === 'deadline'
        ? `lease "${lease}": not renewed in time, it may have expired`
        : `lease "${lease}" lost: ${reason}`,
    );
    this.lease = lease;
    this.reason = reason;
  }
}

/** Whether `value` is a {@link LeaseLostError} (from any copy of the package). */
export function isLeaseLostError(value: unknown): value is LeaseLostError {
  return isMongoAtomicsError(value) && value.name === 'LeaseLostError';
}

/** What withLease passes to `fn`. */
export interface LeaseContext {
  /**
   * Aborted (reason: a LeaseLostError) the moment a renewal reports the lease lost, or when the
   * lease could have expired without a successful renewal. Stop working, and pass it to
   * anything that accepts a signal.
   */
  readonly signal: AbortSignal;
  /** This acquisition's fencing token: pass it to fencedUpdate for every protected write. */
  readonly token: number;
}

/** Options of withLease. */
export interface WithLeaseOptions {
  /** See AcquireLeaseOptions.holder. */
  readonly holder: string;
  /** How long the lease lasts after each acquisition or renewal, in milliseconds. */
  readonly ttlMs: number;
  /**
   * Pause between the end of one renewal and the start of the next, in milliseconds: a whole
   * number ≥ 1 and below `ttlMs`. Leave room for a few failed renewals (network) before the
   * lease runs out.
   * @default Math.max(1, Math.floor(ttlMs / 3))
   */
  readonly renewEveryMs?: number | undefined;
  /** Called after each successful renewal. Errors it throws are ignored. */
  readonly onRenew?: ((event: { readonly expiresAt: Date }) => void) | undefined;
  /**
   * Called when a renewal fails with an error (network, server); the next renewal is tried
   * after `renewEveryMs`, until the deadline aborts the signal. Errors it throws are ignored.
   */
  readonly onRenewError?: ((error: unknown) => void) | undefined;
  /** Called once when the signal is aborted, with its reason. Errors it throws are ignored. */
  readonly onLost?: ((error: LeaseLostError) => void) | undefined;
  /**
   * Called when the release at the end fails with an error; the lease then expires by itself
   * after `ttlMs`. withLease still returns or rethrows what `fn` did. Errors it throws are ignored.
   */
  readonly onReleaseError?: ((error: unknown) => void) | undefined;
}

/** What withLease did, told by `outcome`. */
export type WithLeaseResult<T> =
  | {
      /** `fn` ran to completion under the lease (which is released now). */
      readonly outcome: 'completed';
      /** What `fn` returned. */
      readonly value: T;
      /** The fencing token `fn` ran with. */
      readonly token: number;
      /** Whether the signal was aborted while `fn` ran (the lease was or may have been lost). */
      readonly lost: boolean;
      /** Absent on this outcome. */
      readonly holder?: never;
    }
  | {
      /** Someone else holds the lease: `fn` was not called. */
      readonly outcome: 'held';
      /** The holder label of whoever holds the lease now. */
      readonly holder: string;
      /** When the lease expires, by the server's clock. */
      readonly expiresAt: Date;
      /** Absent on this outcome. */
      readonly value?: never;
      /** Absent on this outcome. */
      readonly token?: never;
    };

const WITH_LEASE_OPTIONS = [
  'holder',
  'ttlMs',
  'renewEveryMs',
  'onRenew',
  'onRenewError',
  'onLost',
  'onReleaseError',
] as const;

function callHook<A>(hook: ((arg: A) => void) | undefined, arg: A): void {
  try {
    hook?.(arg);
  } catch {
    // A hook is observability: its failure must not break the lease's bookkeeping.
  }
}

/**
 * Runs `fn` while holding the lease `name`: acquires it, renews it in the background, aborts
 * `fn`'s signal when it is (or may be) lost, and releases it when `fn` settles.
 *
 * - **Busy**: when someone holds the lease, resolves `{ outcome: 'held', holder, expiresAt }`
 *   without calling `fn` (one command).
 * - **Renewal**: every `renewEveryMs` after the previous renewal finished, renewLease with
 *   the token. `lost` aborts the signal at once (a LeaseLostError with its reason) and stops
 *   renewing; an error goes to `onRenewError` and the next renewal is tried.
 * - **Deadline**: the signal is also aborted when `ttlMs` has passed since the last successful
 *   acquire or renew request was SENT, measured with the client's monotonic clock
 *   (`performance.now()`), unaffected by wall-clock changes: the server started the lease
 *   after the request was sent, so the lease cannot end before this deadline (given clocks
 *   that tick at the same rate). `fn` may then still be running: the signal asks it to stop,
 *   and fencedUpdate refuses its writes once a successor has written.
 * - **Exit**: releases the lease (with the token) whether `fn` returned or threw, then
 *   resolves `{ outcome: 'completed', value, token, lost }` or rethrows `fn`'s error.
 * - **Round trips**: 1 acquire + 1 per renewal + 1 release. Never logs: hooks only.
 *
 * @example
 * ```ts
 * const run = await withLease(leases, 'nightly-report', async ({ signal, token }) => {
 *   for (const batch of batches) {
 *     signal.throwIfAborted();
 *     await fencedUpdate(reports, { filter: { _id: 'nightly' }, update: { $push: { done: batch } }, token });
 *   }
 * }, { holder: 'worker-1', ttlMs: 30_000 });
 * if (run.outcome === 'held') console.log(`${run.holder} is running it`);
 * ```
 */
export async function withLease<T, TSchema extends Document = LeaseDocument>(
  collection: Collection<TSchema>,
  name: string,
  fn: (context: LeaseContext) => Promise<T> | T,
  options: WithLeaseOptions,
): Promise<WithLeaseResult<T>> {
  const v = validator('withLease');
  v.collection(collection);
  checkName(v, name);
  v.function(fn, 'fn');
  v.options(options);
  v.knownKeys(options, WITH_LEASE_OPTIONS);
  const holder = checkHolder(v, options.holder);
  const ttlMs = checkTtl(v, options.ttlMs, 'ttlMs');
  let renewEveryMs = Math.max(1, Math.floor(ttlMs / 3));
  if (options.renewEveryMs !== undefined) {
    renewEveryMs = v.integer(options.renewEveryMs, 'renewEveryMs', 1);
    if (renewEveryMs >= ttlMs)
      v.fail('renewEveryMs', `must be below ttlMs (${ttlMs}), got ${renewEveryMs}`);
  }
  for (const hook of ['onRenew', 'onRenewError', 'onLost', 'onReleaseError'] as const) {
    if (options[hook] !== undefined) v.function(options[hook], hook);
  }

  const acquiredSentAt = performance.now();
  const lease = await acquireLease(collection, name, { holder, ttlMs });
  if (lease.outcome === 'held') {
    return { outcome: 'held', holder: lease.holder, expiresAt: lease.expiresAt };
  }
  const { token } = lease;
  const controller = new AbortController();
  const lose = (reason: LeaseLostReason | 'deadline') => {
    if (controller.signal.aborted) return;
    const error = new LeaseLostError(name, reason);
    controller.abort(error);
    callHook(options.onLost, error);
  };

  let expiry: ReturnType<typeof setTimeout> | undefined;
  const armDeadline = (sentAt: number) => {
    clearTimeout(expiry);
    const left = sentAt + ttlMs - performance.now();
    if (left <= 0) lose('deadline');
    else expiry = setTimeout(() => lose('deadline'), left);
  };
  armDeadline(acquiredSentAt);

  let stopped = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const renewing = (async () => {
    while (!stopped && !controller.signal.aborted) {
      await pause(renewEveryMs);
      if (stopped || controller.signal.aborted) return;
      const sentAt = performance.now();
      let renewed: RenewLeaseResult;
      try {
        renewed = await renewLease(collection, name, { token, ttlMs });
      } catch (error) {
        callHook(options.onRenewError, error);
        continue;
      }
      if (renewed.outcome === 'lost') {
        lose(renewed.reason);
        return;
      }
      if (controller.signal.aborted) return; // the deadline passed first: never un-abort
      armDeadline(sentAt);
      callHook(options.onRenew, { expiresAt: renewed.expiresAt });
    }
  })();

  const finish = async () => {
    stopped = true;
    wake?.();
    await renewing;
    clearTimeout(expiry);
    try {
      await releaseLease(collection, name, { token });
    } catch (error) {
      callHook(options.onReleaseError, error);
    }
  };

  let value: T;
  try {
    value = await fn({ signal: controller.signal, token });
  } catch (error) {
    await finish();
    throw error;
  }
  const lost = controller.signal.aborted;
  await finish();
  return { outcome: 'completed', value, token, lost };
}

/** Options of fencedUpdate. */
export interface FencedUpdateOptions<TSchema extends Document = Document> {
  /** Selects the ONE protected document, e.g. `{ _id: 'report-2026-12-02' }`. */
  readonly filter: Filter<TSchema>;
  /**
   * An operator update (`$set`, `$inc`, `$push`, …; no pipeline, no replacement), applied only
   * if the token is not older than the document's fence. It must not write `fenceField`.
   */
  readonly update: UpdateFilter<TSchema>;
  /** The fencing token of the lease the write is made under. */
  readonly token: number;
  /**
   * The field of the protected document that records the newest token that wrote it.
   * @default '_fence'
   */
  readonly fenceField?: string | undefined;
  /** Run inside the caller's session or transaction. */
  readonly session?: ClientSession | undefined;
}

/** What fencedUpdate did, told by `outcome`. */
export type FencedUpdateResult =
  | {
      /** The update was applied and the document's fence is now `token`. */
      readonly outcome: 'applied';
      /** Absent on this outcome. */
      readonly fence?: never;
    }
  | {
      /** A newer token already wrote the document: the write was refused, nothing changed. */
      readonly outcome: 'fenced';
      /** The newer token recorded in the document. */
      readonly fence: number;
    }
  | {
      /** No document matched `filter` when the update ran; nothing changed. */
      readonly outcome: 'notFound';
      /** Absent on this outcome. */
      readonly fence?: never;
    };

const FENCED_OPTIONS = ['filter', 'update', 'token', 'fenceField', 'session'] as const;

function checkFencedUpdate(v: Validator, value: unknown, fenceField: string): Document {
  return checkOperatorUpdate(v, value, {
    verb: 'has',
    hint: 'pass an operator update such as { $set: … }',
    pipelineHint: 'pass operators such as { $set: … }',
    owned: { path: fenceField, name: 'fence field', why: 'fencedUpdate writes it itself' },
  });
}

/**
 * Applies `update` to the document `filter` selects only if `token` is not older than the
 * newest token that wrote it, and records `token` as its fence: a holder whose lease was taken
 * over can no longer overwrite what its successor wrote.
 *
 * - **Guard**: `filter` AND (`fenceField` missing/null OR `fenceField <= token`).
 * - **Update**: `update` plus `$set: { [fenceField]: token }`, in the same single-document
 *   update (an `update` command with one statement).
 * - **Outcomes**: `applied`, `fenced` (a newer token wrote the document: `fence`), `notFound`.
 * - **Round trips**: applied: 1. Otherwise 2, the second a `find` in which the server compares
 *   the fence with the token (informational: the document may change right after).
 * - **Limits**: the document is protected from the moment a newer token writes it. A stale
 *   holder can still write a document its successor has not written yet: have the successor
 *   write (or merely fence, with `update: { $set: { … } }`) the documents it takes over first,
 *   or keep the job's state in one document that every holder writes through fencedUpdate.
 *   Tokens of different lease names are not comparable: fence one document with one name.
 */
export async function fencedUpdate<TSchema extends Document = Document>(
  collection: Collection<TSchema>,
  options: FencedUpdateOptions<TSchema>,
): Promise<FencedUpdateResult> {
  const v = validator('fencedUpdate');
  v.collection(collection);
  v.options(options);
  v.knownKeys(options, FENCED_OPTIONS);
  const filter = v.filter(options.filter);
  const token = checkToken(v, options.token);
  const fenceField =
    options.fenceField === undefined ? '_fence' : v.writablePath(options.fenceField, 'fenceField');
  const update = checkFencedUpdate(v, options.update, fenceField);
  const session = v.session(options.session, collection);
  const sessionOption = session === undefined ? {} : { session };

  const set = isPlainObject(update.$set) ? update.$set : {};
  const fenced = { ...update, $set: { ...set, [fenceField]: token } };
  const guard = { $or: [{ [fenceField]: null }, { [fenceField]: { $lte: token } }] };
  const result = await collection.updateOne(
    { $and: [filter, guard] } as Filter<TSchema>,
    fenced as UpdateFilter<TSchema>,
    sessionOption,
  );
  if (result.matchedCount === 1) return { outcome: 'applied' };
  const read = await readWithVerdicts(
    'fencedUpdate',
    collection,
    filter,
    { newer: { $gt: [`$${fenceField}`, { $literal: token }] } },
    session,
  );
  if (read === null || !read.verdicts.newer) return { outcome: 'notFound' };
  return {
    outcome: 'fenced',
    fence: numericValue(getField(read.document, fenceField)) ?? Number.NaN,
  };
}
