/**
 * Cluster time, as a single-node replica set primary keeps it (mongod's VectorClock, cluster
 * time component, and the oplog timestamps it hands out), and the `readConcern` rules that
 * depend on it.
 *
 * - Every write (every storage commit, every catalog change) gets a new Timestamp greater than
 *   the cluster time: the wall clock's seconds with increment 1 when the clock is ahead,
 *   otherwise the cluster time plus one increment (VectorClockMutable::tickClusterTime).
 * - `lastApplied` is the newest write's Timestamp: the `operationTime` of every reply (mongod's
 *   computeOperationTime: the client's last op for a write, the last applied optime for a read;
 *   on one node the majority commit point is the last applied optime).
 * - A `$clusterTime` a client sends advances the cluster time ("gossip"). Without
 *   authentication mongod accepts it unsigned; it refuses one more than
 *   maxAcceptableLogicalClockDriftSecs (one year) ahead of its wall clock.
 * - Replies carry `$clusterTime: { clusterTime, signature: { hash: 20 zero bytes, keyId: 0 } }`,
 *   the dummy signature mongod sends when it has no signing keys (no keyFile).
 */
import { Binary, type Document, Long, Timestamp } from 'bson';
import { ErrorCode, ServerError } from './errors.js';

/** mongod's maxAcceptableLogicalClockDriftSecs default: one year. */
const MAX_DRIFT_SECONDS = 365 * 24 * 60 * 60;

export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return a.t !== b.t ? (a.t < b.t ? -1 : 1) : a.i === b.i ? 0 : a.i < b.i ? -1 : 1;
}

/** mongod's Timestamp::toString. */
export function formatTimestamp(ts: Timestamp): string {
  return `Timestamp(${ts.t}, ${ts.i})`;
}

function wallSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export class ClusterClock {
  private time: Timestamp;
  private applied: Timestamp;

  constructor() {
    // Replica set initiation writes the first oplog entry: cluster time starts at it.
    this.time = new Timestamp({ t: wallSeconds(), i: 1 });
    this.applied = this.time;
  }

  /** The cluster time: the newest Timestamp issued or gossiped in. */
  get clusterTime(): Timestamp {
    return this.time;
  }

  /** The newest write's Timestamp. */
  get lastApplied(): Timestamp {
    return this.applied;
  }

  /** A new Timestamp for a write, after every Timestamp seen so far. */
  tick(): Timestamp {
    const secs = wallSeconds();
    const next =
      secs > this.time.t
        ? new Timestamp({ t: secs, i: 1 })
        : new Timestamp({ t: this.time.t, i: this.time.i + 1 });
    this.time = next;
    this.applied = next;
    return next;
  }

  /** Gossip in: a client's `$clusterTime` moves the cluster time forward, never back. */
  advance(ts: Timestamp): void {
    if (ts.t > wallSeconds() + MAX_DRIFT_SECONDS) {
      throw new ServerError(
        ErrorCode.ClusterTimeFailsRateLimiter,
        `New cluster time, ${ts.t}, is too far from this node's wall clock time, ${wallSeconds()}.`,
      );
    }
    if (compareTimestamps(ts, this.time) > 0) this.time = ts;
  }

  /** The fields mongod appends to every reply of a replica set member. */
  replyFields(): Document {
    return {
      $clusterTime: {
        clusterTime: this.time,
        signature: { hash: new Binary(Buffer.alloc(20), 0), keyId: Long.ZERO },
      },
      operationTime: this.applied,
    };
  }
}

/** A command's `readConcern`, parsed as mongod's ReadConcernArgs::parse does. */
export interface ReadConcern {
  readonly level: 'local' | 'majority' | 'linearizable' | 'available' | 'snapshot' | undefined;
  readonly afterClusterTime: Timestamp | undefined;
  readonly atClusterTime: Timestamp | undefined;
}

const LEVELS = new Set(['local', 'majority', 'linearizable', 'available', 'snapshot']);

function timestampField(readConcern: Document, field: string): Timestamp {
  const value = readConcern[field];
  if (!(value instanceof Timestamp)) {
    throw new ServerError(
      ErrorCode.TypeMismatch,
      `"${field}" had the wrong type. Expected timestamp, found ${value === null ? 'null' : typeof value}`,
    );
  }
  return value;
}

/**
 * Parses `command.readConcern` (src/mongo/db/repl/read_concern_args.cpp). Returns undefined when
 * the command has none.
 */
export function parseReadConcern(command: Document): ReadConcern | undefined {
  const raw = command.readConcern;
  if (raw === undefined) return undefined;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ServerError(ErrorCode.FailedToParse, 'readConcern field should be an object');
  }
  const readConcern = raw as Document;
  let level: ReadConcern['level'];
  let afterClusterTime: Timestamp | undefined;
  let atClusterTime: Timestamp | undefined;
  for (const field of Object.keys(readConcern)) {
    if (field === 'level') {
      const value = readConcern.level;
      if (typeof value !== 'string') {
        throw new ServerError(
          ErrorCode.TypeMismatch,
          `"level" had the wrong type. Expected string, found ${typeof value}`,
        );
      }
      if (!LEVELS.has(value)) {
        throw new ServerError(
          ErrorCode.FailedToParse,
          "readConcern.level must be either 'local', 'majority', 'linearizable', 'available', or 'snapshot'",
        );
      }
      level = value as ReadConcern['level'];
    } else if (field === 'afterClusterTime') {
      afterClusterTime = timestampField(readConcern, field);
    } else if (field === 'atClusterTime') {
      atClusterTime = timestampField(readConcern, field);
    } else if (
      field === 'afterOpTime' ||
      field === 'provenance' ||
      field === 'allowTransactionTableSnapshot'
    ) {
      // mongod's internal options (replication, default read concern provenance): not imitated.
      throw new ServerError(
        ErrorCode.InvalidOptions,
        `the offline test server does not implement readConcern option '${field}'`,
      );
    } else {
      throw new ServerError(
        ErrorCode.InvalidOptions,
        `Unrecognized option in readConcern: ${field}`,
      );
    }
  }
  const effective = level ?? 'local';
  if (afterClusterTime !== undefined && atClusterTime !== undefined) {
    throw new ServerError(
      ErrorCode.InvalidOptions,
      'Specifying a timestamp for readConcern snapshot in a causally consistent session is not allowed. See https://docs.mongodb.com/manual/core/read-isolation-consistency-recency/#causal-consistency',
    );
  }
  if (
    afterClusterTime !== undefined &&
    effective !== 'majority' &&
    effective !== 'local' &&
    effective !== 'snapshot'
  ) {
    throw new ServerError(
      ErrorCode.InvalidOptions,
      'afterClusterTime field can be set only if level is equal to majority, local, or snapshot',
    );
  }
  if (atClusterTime !== undefined && effective !== 'snapshot') {
    throw new ServerError(
      ErrorCode.InvalidOptions,
      'atClusterTime field can be set only if level is equal to snapshot',
    );
  }
  if (atClusterTime !== undefined && atClusterTime.t === 0 && atClusterTime.i === 0) {
    throw new ServerError(ErrorCode.InvalidOptions, 'atClusterTime cannot be a null timestamp');
  }
  if (afterClusterTime !== undefined && afterClusterTime.t === 0 && afterClusterTime.i === 0) {
    throw new ServerError(ErrorCode.InvalidOptions, 'afterClusterTime cannot be a null timestamp');
  }
  return { level, afterClusterTime, atClusterTime };
}

/**
 * mongod's waitForReadConcern check (src/mongo/db/read_concern_mongod.cpp): a requested
 * afterClusterTime/atClusterTime may not be ahead of the cluster time.
 */
export function checkClusterTimeTarget(readConcern: ReadConcern, clock: ClusterClock): void {
  const name = readConcern.afterClusterTime !== undefined ? 'afterClusterTime' : 'atClusterTime';
  const target = readConcern.afterClusterTime ?? readConcern.atClusterTime;
  if (target === undefined || compareTimestamps(target, clock.clusterTime) <= 0) return;
  throw new ServerError(
    ErrorCode.InvalidOptions,
    `readConcern ${name} value must not be greater than the current clusterTime. Requested clusterTime: ${formatTimestamp(target)}; current clusterTime: ${formatTimestamp(clock.clusterTime)}`,
  );
}
