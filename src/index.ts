/**
 * mongo-atomics: concurrency-safe MongoDB primitives. Each one is correct under every
 * interleaving of concurrent callers, uses the fewest round trips the server allows, and
 * returns expected business outcomes ("insufficient", "already claimed", …) as values.
 *
 * @packageDocumentation
 */

export {
  type ApplyProgressOnceResult,
  type ApplyProgressOptions,
  type ApplyProgressResult,
  applyProgress,
  type BadgeRule,
  type ProgressApplied,
  type ProgressBadges,
  type ProgressLevels,
  type ProgressNotFound,
} from './apply-progress.js';
export {
  type AddToSetWithCapacityOptions,
  type AddToSetWithCapacityResult,
  addToSetWithCapacity,
  type RemoveFromSetWithCapacityOptions,
  type RemoveFromSetWithCapacityResult,
  removeFromSetWithCapacity,
} from './capacity-set.js';
export {
  type ClaimOnceOptions,
  type ClaimOnceResult,
  claimOnce,
} from './claim-once.js';
export {
  GiveUpReason,
  IdempotencyKeyConflictError,
  IdempotencyResultNotStoredError,
  InvalidArgumentError,
  isIdempotencyKeyConflictError,
  isIdempotencyResultNotStoredError,
  isInvalidArgumentError,
  isMongoAtomicsError,
  isRetryBudgetExhaustedError,
  isTransactionsUnsupportedError,
  MongoAtomicsError,
  RetryBudgetExhaustedError,
  TransactionsUnsupportedError,
} from './errors.js';
export {
  type DecrementItem,
  type GuardedDecrementAllInTransaction,
  type GuardedDecrementAllOptions,
  type GuardedDecrementAllOwnTransaction,
  type GuardedDecrementAllResult,
  type GuardedDecrementOptions,
  type GuardedDecrementResult,
  guardedDecrement,
  guardedDecrementAll,
  type Shortage,
} from './guarded-decrement.js';
export {
  type ConfirmHoldResult,
  confirmHold,
  type HoldInfo,
  type HoldQuantityOptions,
  type HoldQuantityResult,
  type HoldRecord,
  type HoldSettlement,
  type HoldsLayoutOptions,
  holdQuantity,
  type ReleaseExpiredHoldsOptions,
  type ReleaseExpiredHoldsResult,
  type ReleaseHoldResult,
  releaseExpiredHolds,
  releaseHold,
  type SettledHoldRecord,
  type SettleHoldCommonResult,
  type SettleHoldOptions,
} from './holds.js';
export {
  ensureIdempotencyIndexes,
  type IdempotencyCollection,
  type IdempotencyContext,
  type IdempotencyRecord,
  type IdempotencyResult,
  IdempotencyState,
  type IdempotencyTransactionContext,
  type IdempotencyWait,
  type WithIdempotencyKeyAnyOptions,
  type WithIdempotencyKeyOptions,
  type WithIdempotencyKeyTransactionOptions,
  withIdempotencyKey,
} from './idempotency.js';
export {
  type ElementCounters,
  type ElementMatch,
  type IncrementOrPushItem,
  type IncrementOrPushOptions,
  type IncrementOrPushOutcome,
  type IncrementOrPushResult,
  incrementOrPushArrayItem,
} from './increment-or-push.js';
export {
  type AcquireLeaseOptions,
  type AcquireLeaseResult,
  acquireLease,
  type FencedUpdateOptions,
  type FencedUpdateResult,
  fencedUpdate,
  isLeaseLostError,
  type LeaseContext,
  type LeaseDocument,
  LeaseLostError,
  type LeaseLostReason,
  MAX_LEASE_TTL_MS,
  type ReleaseLeaseOptions,
  type ReleaseLeaseResult,
  type RenewLeaseOptions,
  type RenewLeaseResult,
  releaseLease,
  renewLease,
  type WithLeaseOptions,
  type WithLeaseResult,
  withLease,
} from './lease.js';
export type {
  AlreadyApplied,
  IfOpId,
  OpIdLogOptions,
  OpIdOptions,
  WithOpId,
  WithoutOpId,
} from './op-log.js';
export type {
  ArrayElementAt,
  ArrayPath,
  CheckedPath,
  IsUntypedSchema,
  MaxPathDepth,
  NumericFieldName,
  NumericPath,
  NumericValue,
  PathRecord,
  PathValue,
  ScalarAt,
  ScalarFieldName,
  ScalarPath,
} from './paths.js';
export {
  confirmPlace,
  type HoldPlaceOptions,
  type HoldPlaceResult,
  holdPlace,
  type PlaceHold,
  type PlaceHoldBaseOptions,
  type PlaceHoldState,
  type ReleaseExpiredPlacesOptions,
  type ReleaseExpiredPlacesResult,
  releaseExpiredPlaces,
  releasePlace,
  SETTLED_HOLDS_KEPT,
  type SettlePlaceOptions,
  type SettlePlaceResult,
} from './seat-holds.js';
export {
  type RetryingTransactionOptions,
  type TransactionAttempt,
  type TransactionBackoff,
  type TransactionRetryEvent,
  TransactionRetryReason,
  type WithRetryingTransactionOptions,
  withRetryingTransaction,
} from './transaction.js';
export {
  type UpdateWithVersionOptions,
  type UpdateWithVersionResult,
  updateWithVersion,
  type VersionAttempt,
  type VersionConflict,
  type VersionConflictEvent,
} from './update-with-version.js';
export type { ScalarValue } from './validate.js';
