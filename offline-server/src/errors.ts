/**
 * Server-side errors. A `ServerError` thrown anywhere in command processing becomes
 * `{ ok: 0, code, codeName, errmsg }` (or a `writeErrors` entry for write statements),
 * exactly as mongod shapes them. Codes and names follow mongod's `error_codes.yml`.
 */
export const ErrorCode = {
  InternalError: 1,
  BadValue: 2,
  Unauthorized: 13,
  NoSuchKey: 4,
  FailedToParse: 9,
  TypeMismatch: 14,
  Overflow: 15,
  IllegalOperation: 20,
  LockTimeout: 24,
  NamespaceNotFound: 26,
  IndexNotFound: 27,
  PathNotViable: 28,
  ConflictingUpdateOperators: 40,
  CursorNotFound: 43,
  NamespaceExists: 48,
  MaxTimeMSExpired: 50,
  DollarPrefixedFieldName: 52,
  EmptyFieldName: 56,
  InvalidIdField: 53,
  NotSingleValueField: 54,
  CommandNotFound: 59,
  ImmutableField: 66,
  CannotCreateIndex: 67,
  InvalidOptions: 72,
  InvalidNamespace: 73,
  IndexOptionsConflict: 85,
  IndexKeySpecsConflict: 86,
  HostUnreachable: 6,
  HostNotFound: 7,
  NetworkTimeout: 89,
  ShutdownInProgress: 91,
  WriteConflict: 112,
  ConflictingOperationInProgress: 117,
  SnapshotTooOld: 239,
  ClusterTimeFailsRateLimiter: 209,
  NotAReplicaSet: 123,
  SnapshotUnavailable: 246,
  CommandFailed: 125,
  InterruptedAtShutdown: 11600,
  InterruptedDueToReplStateChange: 11602,
  NotWritablePrimary: 10107,
  NotPrimaryNoSecondaryOk: 13435,
  NotPrimaryOrSecondary: 13436,
  PrimarySteppedDown: 189,
  SocketException: 9001,
  ExceededTimeLimit: 262,
  TransactionTooOld: 225,
  NoSuchTransaction: 251,
  TransactionCommitted: 256,
  TransactionTooLarge: 257,
  OperationNotSupportedInTransaction: 263,
  InvalidPipelineOperator: 168,
  CannotIndexParallelArrays: 171,
  QueryFeatureNotAllowed: 224,
  NotImplemented: 238,
  InvalidIndexSpecificationOption: 197,
  Location40415: 40415,
  Location16554: 16554,
  Location16555: 16555,
  DuplicateKey: 11000,
  Location40323: 40323,
  Location40324: 40324,
  Location15973: 15973,
  Location16410: 16410,
  Location31249: 31249,
  Location31250: 31250,
  Location31254: 31254,
  WriteConcernTimeout: 64,
  UnknownReplWriteConcern: 79,
  UnsatisfiableWriteConcern: 100,
  // error_codes.yml codes named by error_labels.cpp or its categories (see labels.ts).
  ReadConcernMajorityNotAvailableYet: 134,
  StaleEpoch: 150,
  StaleDbVersion: 249,
  StaleChunkHistory: 250,
  PreparedTransactionInProgress: 267,
  MigrationConflict: 272,
  ChangeStreamFatalError: 280,
  ChangeStreamHistoryLost: 286,
  ShardInvalidatedForTargeting: 304,
  ConnectionPoolExpired: 317,
  TenantMigrationCommitted: 321,
  TenantMigrationAborted: 325,
  ShardCannotRefreshDueToLocksHeld: 343,
  InternalTransactionNotSupported: 358,
  ConnectionError: 384,
  StaleConfig: 13388,
  BackupCursorOpenConflictWithCheckpoint: 50915,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const codeNames = new Map<number, string>(
  Object.entries(ErrorCode).map(([name, code]) => [code, name]),
);

/** mongod's `codeName` for a code; `Location<code>` for codes that have no name. */
export function codeName(code: number): string {
  return codeNames.get(code) ?? `Location${code}`;
}

export class ServerError extends Error {
  override readonly name = 'ServerError';
  readonly code: number;
  readonly codeName: string;
  /** Extra fields copied into the error document (e.g. keyPattern/keyValue for E11000). */
  readonly extra: Readonly<Record<string, unknown>>;
  /** Labels set explicitly (fail points); otherwise the dispatcher computes them. */
  readonly errorLabels: readonly string[] | undefined;

  constructor(
    code: number,
    message: string,
    extra: Record<string, unknown> = {},
    errorLabels?: readonly string[],
  ) {
    super(message);
    this.code = code;
    this.codeName = codeName(code);
    this.extra = extra;
    this.errorLabels = errorLabels;
  }
}

export function isServerError(value: unknown): value is ServerError {
  return value instanceof ServerError;
}
