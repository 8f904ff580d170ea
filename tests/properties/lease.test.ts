/**
 * Leases under random concurrent schedules, checked against a sequential model.
 *
 * A schedule is a list of rounds. In each round every worker (its own single-connection client)
 * does one thing at the same moment: acquire, renew or release with the last token it was
 * granted, or nothing; and a fifth client may end the lease by the server's clock (the
 * expiry, `expiresAt = $$NOW`). The round's calls really interleave at the server, so the check
 * is linearizability: SOME order of the round's calls, applied to the model, must give exactly
 * the outcomes every call reported (tokens, previous holders and loss reasons included) and the
 * lease document found after the round. That covers "exactly one holder at every instant": an
 * order that hands a live lease to two workers does not exist in the model.
 *
 * The naive lock (read the lease, decide it is free, write) fails this very property under the
 * same harness, with every read of a round before any write.
 */
import { fc, test } from '@fast-check/vitest';
import type { Collection, MongoClient } from 'mongodb';
import { describe, expect } from 'vitest';
import { acquireLease, type LeaseDocument, releaseLease, renewLease } from '../../src/lease.js';
import { type Barrier, barrier } from '../../src/testing/index.js';
import { useTestDatabase } from '../support/mongo.js';
import { propertyParameters, propertyTimeout, usePropertyClients } from './support.js';

const WORKERS = 3;
const RUNS = 12;
const LONG = 600_000;

const t = useTestDatabase('prop_lease');
const clients = usePropertyClients(WORKERS + 1, 'lease');
let runCounter = 0;

type Op = 'acquire' | 'renew' | 'release' | 'idle';
interface Round {
  readonly ops: readonly Op[];
  readonly expire: boolean;
}
type Schedule = readonly Round[];

const roundArb: fc.Arbitrary<Round> = fc.record({
  ops: fc.array(fc.constantFrom<Op>('acquire', 'acquire', 'renew', 'release', 'idle'), {
    minLength: WORKERS,
    maxLength: WORKERS,
  }),
  expire: fc.boolean(),
});
const scheduleArb = fc.array(roundArb, { minLength: 1, maxLength: 8 });

/** The lease as the model sees it. `live` is false once expired or released. */
interface Model {
  readonly holder: string | null;
  readonly token: number;
  readonly live: boolean;
}

/** One call of a round: who, what, with which token. `worker` -1 is the clock (expire). */
interface Call {
  readonly worker: number;
  readonly op: Op | 'expire';
  readonly token: number;
}

/** Applies one call to the model: the outcome it must report, and the next state. */
function step(model: Model, call: Call): [string, Model] {
  const me = `w${call.worker}`;
  switch (call.op) {
    case 'acquire': {
      if (model.holder !== null && model.live) return [`held:${model.holder}`, model];
      const previous = model.holder ?? '-';
      return [
        `acquired:${model.token + 1}:${previous}`,
        { holder: me, token: model.token + 1, live: true },
      ];
    }
    case 'renew': {
      if (model.token === call.token && model.holder !== null && model.live)
        return ['renewed', model];
      if (model.token > call.token) return ['lost:superseded', model];
      if (model.token === call.token && model.holder !== null) return ['lost:expired', model];
      return ['lost:released', model];
    }
    case 'release':
      if (model.token === call.token && model.holder !== null)
        return ['released', { holder: null, token: model.token, live: false }];
      return ['notHeld', model];
    case 'expire':
      return ['done', { ...model, live: false }];
    default:
      return ['idle', model];
  }
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

/** The model states reachable by some order of `calls` that reports exactly `observed`. */
function explain(
  states: readonly Model[],
  calls: readonly Call[],
  observed: readonly string[],
): Model[] {
  const found = new Map<string, Model>();
  for (const start of states) {
    for (const order of permutations(calls.map((_, i) => i))) {
      let model = start;
      let ok = true;
      for (const index of order) {
        const [outcome, next] = step(model, calls[index] as Call);
        if (outcome !== observed[index]) {
          ok = false;
          break;
        }
        model = next;
      }
      if (ok) found.set(JSON.stringify(model), model);
    }
  }
  return [...found.values()];
}

interface Impl {
  acquire(
    coll: Collection<LeaseDocument>,
    name: string,
    holder: string,
    gate: Barrier,
  ): Promise<string>;
}

const safe: Impl = {
  async acquire(coll, name, holder) {
    const r = await acquireLease(coll, name, { holder, ttlMs: LONG });
    return r.outcome === 'acquired'
      ? `acquired:${r.token}:${r.previousHolder ?? '-'}`
      : `held:${r.holder}`;
  },
};

/** The naive lock: read, decide with the client clock, write (every read of a round first). */
const naive: Impl = {
  async acquire(coll, name, holder, gate) {
    const doc = await coll.findOne({ _id: name });
    const now = Date.now();
    const live =
      doc !== null &&
      doc.holder !== null &&
      doc.expiresAt !== null &&
      doc.expiresAt.getTime() > now;
    await gate();
    if (live) return `held:${doc.holder}`;
    const token = (doc?.token ?? 0) + 1;
    await coll.updateOne(
      { _id: name },
      {
        $set: {
          holder,
          token,
          expiresAt: new Date(now + LONG),
          takenOverFrom: doc?.holder ?? null,
        },
      },
      { upsert: true },
    );
    return `acquired:${token}:${doc?.holder ?? '-'}`;
  },
};

const collOf = (client: MongoClient | undefined, name: string): Collection<LeaseDocument> => {
  if (client === undefined) throw new Error('property client missing');
  return client.db(t.db.databaseName).collection<LeaseDocument>(name);
};

/** Runs a schedule; throws (a failed expectation) when no order of some round explains it. */
async function runLeaseSchedule(impl: Impl, schedule: Schedule): Promise<void> {
  runCounter += 1;
  const collName = 'leases';
  const name = `lease-${runCounter}`;
  const tokens: (number | undefined)[] = Array.from({ length: WORKERS }, () => undefined);
  let states: Model[] = [{ holder: null, token: 0, live: false }];
  const granted: number[] = [];
  for (const [r, round] of schedule.entries()) {
    const calls: Call[] = [];
    round.ops.forEach((op, worker) => {
      const token = tokens[worker];
      if (op === 'idle' || (op !== 'acquire' && token === undefined)) return;
      calls.push({ worker, op, token: token ?? 0 });
    });
    if (round.expire) calls.push({ worker: -1, op: 'expire', token: 0 });
    const gate = barrier(Math.max(1, calls.filter((c) => c.op === 'acquire').length));
    const observed = await Promise.all(
      calls.map(async (call): Promise<string> => {
        if (call.worker === -1) {
          await collOf(clients.all[WORKERS], collName).updateOne(
            { _id: name, holder: { $ne: null } },
            [{ $set: { expiresAt: '$$NOW' } }],
          );
          return 'done';
        }
        const coll = collOf(clients.all[call.worker], collName);
        if (call.op === 'acquire') {
          const outcome = await impl.acquire(coll, name, `w${call.worker}`, gate);
          const match = /^acquired:(\d+):/.exec(outcome);
          if (match !== null) {
            tokens[call.worker] = Number(match[1]);
            granted.push(Number(match[1]));
          }
          return outcome;
        }
        if (call.op === 'renew') {
          const result = await renewLease(coll, name, { token: call.token, ttlMs: LONG });
          return result.outcome === 'renewed' ? 'renewed' : `lost:${result.reason}`;
        }
        return (await releaseLease(coll, name, { token: call.token })).outcome;
      }),
    );
    const doc = await collOf(clients.all[WORKERS], collName).findOne({ _id: name });
    states = explain(states, calls, observed).filter(
      (model) => (doc?.holder ?? null) === model.holder && (doc?.token ?? 0) === model.token,
    );
    expect(
      states.length,
      `round ${r}: no order of ${JSON.stringify(calls)} reports ${JSON.stringify(observed)} and leaves ${JSON.stringify(doc)}`,
    ).toBeGreaterThan(0);
  }
  // Every token granted once, 1, 2, 3, … in order.
  expect([...granted].sort((a, b) => a - b)).toEqual(granted.map((_, i) => i + 1));
}

describe('leases against the model', () => {
  test.prop([scheduleArb], propertyParameters(RUNS))(
    'acquire / renew / release / expiry from concurrent workers: every round is explained by some order of its calls (one holder at a time, tokens never reused)',
    async (schedule) => {
      await runLeaseSchedule(safe, schedule);
    },
    propertyTimeout(RUNS, 1_500),
  );

  test('the naive read-then-write lock fails the same property (several workers acquire one free lease)', async () => {
    const firstRace: Schedule = [{ ops: ['acquire', 'acquire', 'acquire'], expire: false }];
    const result = await fc.check(
      fc.asyncProperty(scheduleArb, (schedule) => runLeaseSchedule(naive, schedule)),
      { numRuns: 1, examples: [[firstRace]] },
    );
    expect(result.failed).toBe(true);
    // And the real one passes that very schedule.
    await runLeaseSchedule(safe, firstRace);
  }, 60_000);
});
