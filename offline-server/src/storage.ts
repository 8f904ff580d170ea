/**
 * In-memory multi-version storage.
 *
 * - Every committed write gets a new logical timestamp; each document keeps its versions
 *   (`{ ts, doc | null }`), so a transaction reads the snapshot it started at. Each logical
 *   timestamp also has the cluster Timestamp it was committed at (`history`), kept for
 *   `minSnapshotHistoryWindowInSeconds` as mongod keeps its snapshot history, so a snapshot
 *   read can ask for the data as of an `atClusterTime`; older is SnapshotTooOld (239).
 * - A write goes through a `WriteUnit`: outside a transaction, the unit's writes become
 *   visible together when the command finishes (each command runs synchronously, so it is
 *   atomic); inside one, they stay in the transaction's write set until commit.
 * - Write locks follow WiredTiger's "first updater wins": a transaction that writes a document
 *   (or a unique index key) holds it until it ends. Another transaction touching it gets
 *   WriteConflict (112); a plain write touching it throws `Blocked`, and the dispatcher
 *   re-runs that command once the holder has committed or aborted (as mongod retries
 *   internally). A transaction also conflicts with commits newer than its snapshot.
 */
import { type Document, type Timestamp, UUID } from 'bson';
import { ClusterClock, compareTimestamps, formatTimestamp } from './clock.js';
import { ErrorCode, ServerError } from './errors.js';
import { indexKeys, matchesPartialFilter } from './index-keys.js';
import { formatValue, getPath, getPathValues, setField, valueKey } from './values.js';

export interface IndexSpec {
  readonly v: 2;
  readonly key: Document;
  readonly name: string;
  readonly unique?: boolean;
  readonly sparse?: boolean;
  readonly partialFilterExpression?: Document;
  readonly expireAfterSeconds?: number;
}

interface Version {
  readonly ts: number;
  readonly doc: Document | null;
}

export class Collection {
  readonly uuid = new UUID();
  /** Versions of each document by `_id` key, oldest first; Map order is natural order. */
  readonly versions = new Map<string, Version[]>();
  indexes: IndexSpec[] = [{ v: 2, key: { _id: 1 }, name: '_id_' }];
  /**
   * The timestamp at which the collection entered the catalog. A transaction whose snapshot is
   * older does not see it (mongod's catalog is versioned too): creating it there is a create of
   * its own, which conflicts at commit.
   */
  createdTs = 0;

  constructor(
    readonly db: string,
    readonly name: string,
  ) {}

  get ns(): string {
    return `${this.db}.${this.name}`;
  }

  latest(id: string): Document | null {
    const chain = this.versions.get(id);
    return chain === undefined ? null : (chain[chain.length - 1]?.doc ?? null);
  }

  latestTs(id: string): number {
    const chain = this.versions.get(id);
    return chain === undefined ? -1 : (chain[chain.length - 1]?.ts ?? -1);
  }

  at(id: string, ts: number): Document | null {
    const chain = this.versions.get(id);
    if (chain === undefined) return null;
    for (let i = chain.length - 1; i >= 0; i--) {
      const version = chain[i]!;
      if (version.ts <= ts) return version.doc;
    }
    return null;
  }
}

export type TxnState = 'inProgress' | 'committed' | 'aborted';

export class Transaction {
  state: TxnState = 'inProgress';
  readonly writes = new Map<Collection, Map<string, Document | null>>();
  readonly lockKeys = new Set<string>();
  /**
   * Collections the transaction created (explicitly, or implicitly by a write or createIndexes),
   * by namespace. Only the transaction sees them; they enter the catalog at commit and vanish on
   * abort (manual, core/transactions-operations, "Create Collections and Indexes in a
   * Transaction").
   */
  readonly createdCollections = new Map<string, Collection>();
  /** The read concern level the transaction started with (`undefined`: the default, local). */
  readConcernLevel: string | undefined;
  /** Why the server aborted it, for the NoSuchTransaction message. */
  abortReason: string | undefined;
  private resolveEnded!: () => void;
  readonly ended = new Promise<void>((resolve) => {
    this.resolveEnded = resolve;
  });

  constructor(
    readonly sessionKey: string,
    readonly txnNumber: number,
    readonly snapshotTs: number,
    readonly expiresAt: number,
  ) {}

  markEnded(state: 'committed' | 'aborted'): void {
    this.state = state;
    this.resolveEnded();
  }
}

/** Thrown when a plain write must wait for a transaction holding one of its locks. */
export class Blocked extends Error {
  constructor(readonly holder: Transaction) {
    super('blocked by an open transaction');
  }
}

/** The cluster Timestamp of one logical timestamp, and when (wall clock) it was committed. */
interface HistoryEntry {
  readonly counter: number;
  readonly ts: Timestamp;
  readonly wallMs: number;
}

export class Storage {
  clock = 0;
  readonly clusterClock = new ClusterClock();
  /** How long superseded versions stay readable by `atClusterTime` (mongod: 300 s). */
  historyWindowMs = 300_000;
  /** Oldest first; `history[0]` is the oldest readable point in time. */
  private readonly history: HistoryEntry[] = [
    { counter: 0, ts: this.clusterClock.lastApplied, wallMs: Date.now() },
  ];
  /** The `oldest` the last prune ran with: versions only become prunable when it moves. */
  private prunedAt = -1;
  readonly databases = new Map<string, Map<string, Collection>>();
  readonly locks = new Map<string, Transaction>();
  readonly activeTransactions = new Set<Transaction>();
  /** Documents with more than one version (or a deleted tail): candidates for pruning. */
  private readonly dirtyKeys = new Map<string, [Collection, string]>();

  collection(db: string, name: string): Collection | undefined {
    return this.databases.get(db)?.get(name);
  }

  /** Returns the collection, creating it (and its database) if needed. */
  ensureCollection(db: string, name: string): Collection {
    let collections = this.databases.get(db);
    if (collections === undefined) {
      collections = new Map();
      this.databases.set(db, collections);
    }
    let collection = collections.get(name);
    if (collection === undefined) {
      collection = new Collection(db, name);
      // A catalog change is a write of its own: snapshots taken before it do not see it.
      collection.createdTs = ++this.clock;
      collections.set(name, collection);
    }
    return collection;
  }

  dropCollection(db: string, name: string): boolean {
    const collections = this.databases.get(db);
    const dropped = collections?.delete(name) ?? false;
    if (collections !== undefined && collections.size === 0) this.databases.delete(db);
    return dropped;
  }

  dropDatabase(db: string): void {
    this.databases.delete(db);
  }

  /** Applies a committed write set atomically at a new timestamp. */
  apply(writes: Map<Collection, Map<string, Document | null>>): void {
    if (writes.size === 0) return;
    const ts = ++this.clock;
    this.history.push({ counter: ts, ts: this.clusterClock.tick(), wallMs: Date.now() });
    for (const [collection, docs] of writes) {
      for (const [id, doc] of docs) {
        const chain = collection.versions.get(id);
        if (chain === undefined) {
          if (doc !== null) collection.versions.set(id, [{ ts, doc }]);
          continue;
        }
        chain.push({ ts, doc });
        const key = `${collection.uuid.toHexString()}/${id}`;
        if (!this.dirtyKeys.has(key)) this.dirtyKeys.set(key, [collection, id]);
      }
    }
    this.prune();
  }

  /**
   * The logical timestamp a read at cluster time `ts` sees: the newest write committed at or
   * before it. SnapshotTooOld (239) when `ts` is older than the history kept.
   */
  counterAt(ts: Timestamp): number {
    const first = this.history[0]!;
    if (compareTimestamps(ts, first.ts) < 0) {
      throw new ServerError(
        ErrorCode.SnapshotTooOld,
        `Read timestamp ${formatTimestamp(ts)} is older than the oldest available timestamp.`,
      );
    }
    let low = 0;
    let high = this.history.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (compareTimestamps(this.history[middle]!.ts, ts) <= 0) low = middle;
      else high = middle - 1;
    }
    return this.history[low]!.counter;
  }

  /**
   * Forgets history older than the window. To keep the pruning pass (which walks every document
   * with superseded versions) rare, history is cut in steps of up to a second past the window.
   */
  private trimHistory(): void {
    const slack = Math.min(1000, this.historyWindowMs);
    const now = Date.now();
    if (this.history.length < 2 || this.history[1]!.wallMs > now - this.historyWindowMs - slack)
      return;
    let drop = 0;
    while (
      drop + 1 < this.history.length &&
      this.history[drop + 1]!.wallMs <= now - this.historyWindowMs
    )
      drop++;
    this.history.splice(0, drop);
  }

  /** Drops versions neither an open transaction nor a snapshot read in the window can see. */
  prune(): void {
    this.trimHistory();
    let oldest = this.history[0]!.counter;
    for (const txn of this.activeTransactions) oldest = Math.min(oldest, txn.snapshotTs);
    if (oldest === this.prunedAt) return;
    this.prunedAt = oldest;
    for (const [key, [collection, id]] of this.dirtyKeys) {
      const chain = collection.versions.get(id);
      if (chain === undefined) {
        this.dirtyKeys.delete(key);
        continue;
      }
      // Keep the newest version visible at `oldest` and everything after it.
      let keepFrom = chain.length - 1;
      while (keepFrom > 0 && chain[keepFrom]!.ts > oldest) keepFrom--;
      if (keepFrom > 0) chain.splice(0, keepFrom);
      if (chain.length === 1) {
        this.dirtyKeys.delete(key);
        if (chain[0]!.doc === null) collection.versions.delete(id);
      }
    }
  }

  lockHolder(key: string): Transaction | undefined {
    return this.locks.get(key);
  }

  releaseLocks(txn: Transaction): void {
    for (const key of txn.lockKeys) {
      if (this.locks.get(key) === txn) this.locks.delete(key);
    }
    txn.lockKeys.clear();
  }

  /**
   * Commits `txn`. A collection it created that another client created (and committed) in the
   * meantime makes the commit fail with WriteConflict and aborts the transaction, as mongod's
   * commit does (jstests/core/txns/create_collection_parallel.js).
   */
  commit(txn: Transaction): void {
    for (const created of txn.createdCollections.values()) {
      if (this.collection(created.db, created.name) !== undefined) {
        this.abort(txn, `collection ${created.ns} was created by another operation`);
        throw writeConflict();
      }
    }
    for (const created of txn.createdCollections.values()) {
      const collections = this.databases.get(created.db) ?? new Map<string, Collection>();
      this.databases.set(created.db, collections);
      created.createdTs = ++this.clock;
      collections.set(created.name, created);
    }
    this.apply(txn.writes);
    this.end(txn, 'committed');
  }

  abort(txn: Transaction, reason?: string): void {
    if (txn.state !== 'inProgress') return;
    txn.abortReason = reason;
    this.end(txn, 'aborted');
  }

  private end(txn: Transaction, state: 'committed' | 'aborted'): void {
    this.releaseLocks(txn);
    this.activeTransactions.delete(txn);
    txn.markEnded(state);
    this.prune();
  }
}

/**
 * One command's view of the data and the writes it makes. Reads see the unit's own writes,
 * then (in a transaction) its snapshot, (a snapshot read) the state at `readAt`, or the latest
 * committed state.
 */
export class WriteUnit {
  private readonly ownWrites: Map<Collection, Map<string, Document | null>>;

  constructor(
    readonly storage: Storage,
    readonly txn: Transaction | undefined,
    /** Logical timestamp a snapshot read outside a transaction reads at (see Storage.counterAt). */
    readonly readAt?: number,
  ) {
    this.ownWrites = txn?.writes ?? new Map();
  }

  /**
   * The collection `db.name` as this command sees it: outside a transaction the catalog; inside
   * one, the collections it created itself, then those in the catalog at its snapshot.
   */
  collection(db: string, name: string): Collection | undefined {
    if (this.txn === undefined) return this.storage.collection(db, name);
    const created = this.txn.createdCollections.get(`${db}.${name}`);
    if (created !== undefined) return created;
    const committed = this.storage.collection(db, name);
    return committed !== undefined && committed.createdTs <= this.txn.snapshotTs
      ? committed
      : undefined;
  }

  /**
   * The collection `db.name`, created if this command does not see it. Inside a transaction the
   * new collection belongs to the transaction until it commits.
   */
  ensureCollection(db: string, name: string): Collection {
    if (this.txn === undefined) return this.storage.ensureCollection(db, name);
    const visible = this.collection(db, name);
    if (visible !== undefined) return visible;
    const created = new Collection(db, name);
    this.txn.createdCollections.set(created.ns, created);
    return created;
  }

  /** Whether `collection` was created by this command's transaction, which has not committed. */
  createdInTransaction(collection: Collection): boolean {
    return this.txn?.createdCollections.get(collection.ns) === collection;
  }

  /** Visible document by `_id` key. */
  get(collection: Collection, id: string): Document | null {
    const own = this.ownWrites.get(collection);
    if (own?.has(id)) return own.get(id) ?? null;
    const at = this.txn?.snapshotTs ?? this.readAt;
    return at === undefined ? collection.latest(id) : collection.at(id, at);
  }

  /** Visible documents in natural (insertion) order, as `[idKey, doc]`. */
  *scan(collection: Collection): Generator<[string, Document]> {
    const own = this.ownWrites.get(collection);
    for (const id of collection.versions.keys()) {
      const doc = this.get(collection, id);
      if (doc !== null) yield [id, doc];
    }
    if (own === undefined) return;
    for (const [id, doc] of own) {
      if (doc !== null && !collection.versions.has(id)) yield [id, doc];
    }
  }

  /**
   * Writes `next` (null deletes) in place of `previous` for document `id`, after checking locks,
   * snapshot conflicts and unique indexes. Throws ServerError (DuplicateKey, WriteConflict) or
   * Blocked; on a throw nothing has been written.
   */
  write(
    collection: Collection,
    id: string,
    previous: Document | null,
    next: Document | null,
  ): void {
    const lockKeys = [`${collection.uuid.toHexString()}/_id/${id}`];
    for (const index of collection.indexes) {
      if (index.unique !== true || index.name === '_id_') continue;
      for (const doc of [previous, next]) {
        if (doc === null || !indexApplies(index, doc)) continue;
        for (const key of indexKeys(doc, index.key)) {
          lockKeys.push(`${collection.uuid.toHexString()}/${index.name}/${key}`);
        }
      }
    }
    for (const key of lockKeys) {
      const holder = this.storage.lockHolder(key);
      if (holder === undefined || holder === this.txn) continue;
      if (this.txn === undefined) throw new Blocked(holder);
      throw writeConflict();
    }
    if (this.txn !== undefined && collection.latestTs(id) > this.txn.snapshotTs)
      throw writeConflict();
    if (next !== null) this.checkUnique(collection, id, next);

    if (this.txn !== undefined) {
      for (const key of lockKeys) {
        this.storage.locks.set(key, this.txn);
        this.txn.lockKeys.add(key);
      }
    }
    let own = this.ownWrites.get(collection);
    if (own === undefined) {
      own = new Map();
      this.ownWrites.set(collection, own);
    }
    own.set(id, next);
  }

  private checkUnique(collection: Collection, id: string, doc: Document): void {
    for (const index of collection.indexes) {
      if (index.unique !== true || index.name === '_id_' || !indexApplies(index, doc)) continue;
      const keys = new Set(indexKeys(doc, index.key));
      for (const [otherId, other] of this.scan(collection)) {
        if (otherId === id || !indexApplies(index, other)) continue;
        if (indexKeys(other, index.key).some((key) => keys.has(key))) {
          throw duplicateKey(collection, index, doc);
        }
      }
      // A transaction must not miss a conflicting key committed after its snapshot.
      if (this.txn !== undefined) {
        for (const [otherId, chain] of collection.versions) {
          const latest = chain[chain.length - 1];
          if (otherId === id || latest === undefined || latest.doc === null) continue;
          if (latest.ts <= this.txn.snapshotTs || !indexApplies(index, latest.doc)) continue;
          if (indexKeys(latest.doc, index.key).some((key) => keys.has(key))) throw writeConflict();
        }
      }
    }
  }

  /** Inserts a new document; its `_id` must not be visible already (E11000 on `_id_`). */
  insert(collection: Collection, doc: Document): void {
    const id = valueKey(doc._id);
    if (this.get(collection, id) !== null) {
      throw duplicateKey(collection, { v: 2, key: { _id: 1 }, name: '_id_' }, doc);
    }
    this.write(collection, id, null, doc);
  }

  /** Outside a transaction: make the unit's writes visible. */
  commit(): void {
    if (this.txn === undefined) this.storage.apply(this.ownWrites);
  }
}

/** Whether `doc` has entries in `index` (partial filter, sparse). */
export function indexApplies(index: IndexSpec, doc: Document): boolean {
  if (
    index.partialFilterExpression !== undefined &&
    !matchesPartialFilter(doc, index.partialFilterExpression)
  ) {
    return false;
  }
  if (index.sparse === true) {
    return Object.keys(index.key).some((path) => getPathValues(doc, path).length > 0);
  }
  return true;
}

export function writeConflict(): ServerError {
  return new ServerError(
    ErrorCode.WriteConflict,
    'Write conflict during plan execution and yielding is disabled. :: Please retry your operation or multi-document transaction.',
  );
}

export function duplicateKey(collection: Collection, index: IndexSpec, doc: Document): ServerError {
  const keyValue: Document = {};
  for (const path of Object.keys(index.key)) setField(keyValue, path, getPath(doc, path) ?? null);
  return new ServerError(
    ErrorCode.DuplicateKey,
    `E11000 duplicate key error collection: ${collection.ns} index: ${index.name} dup key: ${formatValue(keyValue)}`,
    { keyPattern: index.key, keyValue },
  );
}
