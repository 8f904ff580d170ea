/**
 * The offline server's own cluster clock and snapshot history: what only it can be asked
 * (its history window set to zero, its refusal of mongod's internal readConcern options).
 * mongod's behaviour is pinned in tests/conformance/cluster-time.test.ts and
 * snapshot-reads.test.ts; references there.
 */
import { connect } from 'node:net';
import { type Document, Long, Timestamp, UUID } from 'bson';
import { describe, expect, it } from 'vitest';
import {
  ClusterClock,
  compareTimestamps,
  parseReadConcern,
} from '../../offline-server/src/clock.js';
import { ErrorCode } from '../../offline-server/src/errors.js';
import { startOfflineServer } from '../../offline-server/src/index.js';
import { Storage, WriteUnit } from '../../offline-server/src/storage.js';
import { encodeReply, FrameReader, OpCode, parseFrame } from '../../offline-server/src/wire.js';
import { serverError } from './helpers.js';

/** Sends OP_MSG commands on one raw connection (the driver rewrites a transaction's readConcern). */
async function rawCommands(uri: string, commands: Document[]): Promise<Document[]> {
  const { hostname, port } = new URL(uri);
  const socket = connect(Number(port), hostname);
  const reader = new FrameReader();
  const replies: Document[] = [];
  try {
    for (const [index, command] of commands.entries()) {
      const request = { requestId: index + 1, opCode: OpCode.MSG, command, moreToCome: false };
      const reply = new Promise<Document>((resolve) => {
        const onData = (chunk: Buffer) => {
          const frame = reader.push(chunk)[0];
          if (frame === undefined) return;
          socket.off('data', onData);
          resolve(parseFrame(frame).command);
        };
        socket.on('data', onData);
      });
      socket.write(encodeReply(request, command));
      replies.push(await reply);
    }
    return replies;
  } finally {
    socket.destroy();
  }
}

function write(storage: Storage, v: string): Timestamp {
  const collection = storage.ensureCollection('db', 'c');
  const unit = new WriteUnit(storage, undefined);
  unit.write(collection, 'k', unit.get(collection, 'k'), { _id: 'k', v });
  unit.commit();
  return storage.clusterClock.lastApplied;
}

function readAt(storage: Storage, ts: Timestamp): unknown {
  const collection = storage.ensureCollection('db', 'c');
  return new WriteUnit(storage, undefined, storage.counterAt(ts)).get(collection, 'k')?.v;
}

describe('cluster clock', () => {
  it('every tick is later than the last one and than any gossiped time', () => {
    const clock = new ClusterClock();
    const first = clock.tick();
    const second = clock.tick();
    expect(compareTimestamps(second, first)).toBeGreaterThan(0);
    const ahead = new Timestamp({ t: second.t + 30, i: 5 });
    clock.advance(ahead);
    expect(compareTimestamps(clock.clusterTime, ahead)).toBe(0);
    // Gossip moves the cluster time only; the last write keeps its time until the next write.
    expect(compareTimestamps(clock.lastApplied, second)).toBe(0);
    expect(compareTimestamps(clock.tick(), ahead)).toBeGreaterThan(0);
    clock.advance(first);
    expect(compareTimestamps(clock.clusterTime, ahead)).toBeGreaterThan(0);
  });

  it('a gossiped time more than a year ahead of the wall clock is refused (ClusterTimeFailsRateLimiter)', () => {
    const clock = new ClusterClock();
    const far = new Timestamp({ t: Math.floor(Date.now() / 1000) + 400 * 24 * 3600, i: 1 });
    expect(serverError(() => clock.advance(far)).code).toBe(ErrorCode.ClusterTimeFailsRateLimiter);
  });
});

describe('snapshot history', () => {
  it('keeps superseded versions readable at their time within the window', () => {
    const storage = new Storage();
    const one = write(storage, 'one');
    const two = write(storage, 'two');
    write(storage, 'three');
    expect(readAt(storage, one)).toBe('one');
    expect(readAt(storage, two)).toBe('two');
    expect(readAt(storage, storage.clusterClock.lastApplied)).toBe('three');
  });

  it('with minSnapshotHistoryWindowInSeconds 0 an older time is SnapshotTooOld and old versions are freed', () => {
    const storage = new Storage();
    storage.historyWindowMs = 0;
    const one = write(storage, 'one');
    write(storage, 'two');
    expect(serverError(() => readAt(storage, one)).code).toBe(ErrorCode.SnapshotTooOld);
    const collection = storage.collection('db', 'c')!;
    expect(collection.versions.get('k')).toHaveLength(1);
    expect(readAt(storage, storage.clusterClock.lastApplied)).toBe('two');
  });
});

describe('readConcern options mongod keeps for itself', () => {
  it.each(['afterOpTime', 'provenance', 'allowTransactionTableSnapshot'])(
    '%s is refused, naming the option',
    (field) => {
      const error = serverError(() => parseReadConcern({ readConcern: { [field]: 1 } }));
      expect(error.code).toBe(ErrorCode.InvalidOptions);
      expect(error.message).toContain(field);
    },
  );

  it('afterClusterTime that is no Timestamp is a TypeMismatch', () => {
    const error = serverError(() => parseReadConcern({ readConcern: { afterClusterTime: 5 } }));
    expect(error.code).toBe(ErrorCode.TypeMismatch);
  });
});

describe('atClusterTime in a transaction', () => {
  it('is refused with InvalidOptions naming it, rather than read at the transaction start', async () => {
    const server = await startOfflineServer();
    try {
      const lsid = { id: new UUID() };
      const [insert, find] = await rawCommands(server.uri, [
        { insert: 'c', documents: [{ _id: 1 }], $db: 'db' },
        {
          find: 'c',
          $db: 'db',
          lsid,
          txnNumber: Long.fromNumber(1),
          startTransaction: true,
          autocommit: false,
          readConcern: { level: 'snapshot', atClusterTime: new Timestamp({ t: 1, i: 1 }) },
        },
      ]);
      expect(insert!.ok).toBe(1);
      expect(find!.ok).toBe(0);
      expect(find!.code).toBe(ErrorCode.InvalidOptions);
      expect(find!.errmsg).toContain('atClusterTime in a transaction');
    } finally {
      await server.close();
    }
  });
});
