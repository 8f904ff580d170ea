/**
 * Property: random concurrent duplicates of requests under a few idempotency keys
 * (withIdempotencyKey, with and without its own transaction, some of whose `fn` fails) run
 * `fn`'s work once per key, and every duplicate gets that run's value.
 */
import { fc, test } from '@fast-check/vitest';
import type { MongoClient } from 'mongodb';
import { beforeAll } from 'vitest';
import { withIdempotencyKey } from '../../src/idempotency.js';
import { useTestDatabase } from '../support/mongo.js';
import {
  type Call,
  CHAOS,
  check,
  expectAcceptableErrors,
  faultsArb,
  propertyParameters,
  propertyTimeout,
  repeated,
  runSchedule,
  scheduleArb,
  usePropertyClients,
  useStatsReport,
  withFaults,
} from './support.js';

const CLIENTS = 4;
const RUNS = 10;
const KEYS = 2;

const t = useTestDatabase('prop_idempotency');
const clients = usePropertyClients(CLIENTS, 'idem');
useStatsReport('idempotency');
let runCounter = 0;
let tokenCounter = 0;

beforeAll(async () => {
  for (const name of ['idempotency', 'payments']) await t.db.createCollection(name);
});

interface Payment {
  _id: string;
  /** Committed runs of `fn`'s business write for this key. */
  runs: number;
}

type RequestOp = {
  readonly key: number;
  /** `txn`: `fn` and the stored result in one transaction of the call's own. */
  readonly mode: 'plain' | 'txn';
  /** `fn` throws (after its write, in transaction mode, which then rolls it back). */
  readonly fails: boolean;
};
type RequestOutcome = {
  readonly outcome: string;
  readonly value?: string;
  readonly leaseLost?: boolean;
};

const requestOpArb: fc.Arbitrary<RequestOp> = fc.record({
  key: fc.nat({ max: KEYS - 1 }),
  mode: fc.constantFrom('plain' as const, 'txn' as const),
  // One request in four fails, so a released key is claimed again by a duplicate.
  fails: fc.constantFrom(false, false, false, true),
});

class Declined extends Error {}

async function executeRequest(
  world: { ids: readonly string[]; completions: Map<string, number> },
  client: MongoClient,
  op: RequestOp,
): Promise<RequestOutcome> {
  const db = client.db(t.db.databaseName);
  const records = db.collection('idempotency');
  const payments = db.collection<Payment>('payments');
  const key = world.ids[op.key]!;
  tokenCounter += 1;
  const token = `v${tokenCounter}`;
  const common = {
    key,
    // Duplicates wait for the holder rather than answering inProgress at once.
    wait: { timeoutMs: CHAOS ? 500 : 3_000, intervalMs: 2 },
  };
  try {
    const result =
      op.mode === 'txn'
        ? await withIdempotencyKey<string>(records, {
            ...common,
            client,
            fn: async ({ session }) => {
              await payments.updateOne({ _id: key }, { $inc: { runs: 1 } }, { session });
              if (op.fails) throw new Declined('card declined');
              return token;
            },
          })
        : await withIdempotencyKey<string>(records, {
            ...common,
            fn: async () => {
              if (op.fails) throw new Declined('card declined');
              await payments.updateOne({ _id: key }, { $inc: { runs: 1 } });
              world.completions.set(key, (world.completions.get(key) ?? 0) + 1);
              return token;
            },
          });
    if (result.outcome === 'executed') {
      return { outcome: result.outcome, value: result.value, leaseLost: result.leaseLost };
    }
    return result.outcome === 'replayed'
      ? { outcome: result.outcome, value: result.value }
      : { outcome: result.outcome };
  } catch (error) {
    // fn's own error comes back unchanged (and the key is released).
    if (error instanceof Declined) return { outcome: 'fnFailed' };
    throw error;
  }
}

function verify(
  world: { ids: readonly string[]; completions: Map<string, number> },
  calls: readonly Call<RequestOp, RequestOutcome>[],
  records: { _id: unknown; state?: unknown; value?: unknown }[],
  payments: Payment[],
) {
  expectAcceptableErrors(calls);
  for (let k = 0; k < KEYS; k++) {
    const key = world.ids[k]!;
    const record = records.find((r) => r._id === key);
    const runs = payments.find((p) => p._id === key)?.runs ?? Number.NaN;
    const mine = calls.filter((call) => call.op.key === k);
    const threw = mine.filter((call) => call.threw).length;
    const resolved = mine.flatMap((call) => (call.threw ? [] : [call.result]));
    for (const result of resolved) {
      check(
        ['executed', 'replayed', 'inProgress', 'fnFailed'].includes(result.outcome),
        'outcome',
        result,
      );
      check(result.leaseLost !== true, 'a lease was lost (fn may have run twice)', result);
    }
    const executed = resolved.filter((r) => r.outcome === 'executed');
    // fn's work once per key: one executed call, its write committed once.
    check(executed.length <= 1, `key ${k}: executed twice`, executed);
    check(
      (world.completions.get(key) ?? 0) <= 1,
      `key ${k}: fn completed twice`,
      world.completions,
    );
    check(runs >= executed.length && runs <= executed.length + threw, `key ${k}: committed runs`, {
      runs,
      executed: executed.length,
      threw,
    });
    // Every duplicate gets the executed call's value, which is what the record stores.
    const winner = executed[0];
    if (winner !== undefined) {
      check(record?.state === 'completed' && record.value === winner.value, `key ${k}: record`, {
        record,
        winner,
      });
    }
    for (const result of resolved.filter((r) => r.outcome === 'replayed')) {
      check(record?.state === 'completed' && result.value === record.value, `key ${k}: replay`, {
        result,
        record,
      });
      if (threw === 0) check(winner !== undefined, `key ${k}: replayed, but nobody executed`);
    }
    if (threw === 0 && winner === undefined) {
      // Nobody ran fn to completion: no committed work, and no completed record.
      check(
        runs === 0 && record?.state !== 'completed',
        `key ${k}: work without an executed call`,
        {
          runs,
          record,
        },
      );
    }
  }
}

test.prop(
  {
    schedule: scheduleArb(requestOpArb, CLIENTS, { maxSteps: 3 }),
    faults: faultsArb(['insert', 'find', 'update', 'delete', 'findAndModify', 'commitTransaction']),
  },
  propertyParameters(RUNS),
)(
  `idempotency keys (plain and transaction mode, failing fn): fn's work once per key, every duplicate gets its value${CHAOS ? ' (chaos)' : ''}`,
  async ({ schedule, faults }) => {
    await repeated(async () => {
      runCounter += 1;
      const ids = Array.from({ length: KEYS }, (_, k) => `r${runCounter}-key${k}`);
      await t.db.collection<Payment>('payments').insertMany(ids.map((_id) => ({ _id, runs: 0 })));
      const world = { ids, completions: new Map<string, number>() };
      const calls = await withFaults(t.db, clients.appName, faults, () =>
        runSchedule(clients.all, schedule, (client, op) => executeRequest(world, client, op)),
      );
      verify(
        world,
        calls,
        await t.db
          .collection('idempotency')
          .find({ _id: { $in: ids as never[] } })
          .toArray(),
        await t.db
          .collection<Payment>('payments')
          .find({ _id: { $in: ids } })
          .toArray(),
      );
    });
  },
  propertyTimeout(RUNS),
);
