/**
 * "Exactly once" properties under random concurrent schedules:
 * - claims (claimOnce, some with repeated opIds): one claimant per document, and every loser
 *   told so;
 * - progress awards (applyProgress, repeated opIds): exact totals, each opId applied once, each
 *   level and each badge reported by exactly one call;
 * - versioned updates (updateWithVersion): no lost update, the version counts the writes.
 */
import { fc, test } from '@fast-check/vitest';
import type { Collection, MongoClient } from 'mongodb';
import { beforeAll } from 'vitest';
import { applyProgress } from '../../src/apply-progress.js';
import { claimOnce } from '../../src/claim-once.js';
import { updateWithVersion } from '../../src/update-with-version.js';
import { useTestDatabase } from '../support/mongo.js';
import {
  type Call,
  CHAOS,
  check,
  expectAcceptableErrors,
  faultsArb,
  isSubsetSum,
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
const RUNS = 8;
const DOCS = 2;
const OP_IDS = ['op-a', 'op-b', 'op-c'] as const;

const t = useTestDatabase('prop_once');
const clients = usePropertyClients(CLIENTS, 'once');
useStatsReport('once');
let runCounter = 0;

beforeAll(async () => {
  for (const name of ['orders', 'players', 'accounts']) await t.db.createCollection(name);
});

function collectionOf<T extends { _id: string }>(client: MongoClient, name: string): Collection<T> {
  return client.db(t.db.databaseName).collection<T>(name);
}

function newIds(prefix: string): string[] {
  runCounter += 1;
  return Array.from({ length: DOCS }, (_, d) => `r${runCounter}-${prefix}${d}`);
}

const docArb = fc.nat({ max: DOCS - 1 });
const opIdArb = fc.option(fc.constantFrom(...OP_IDS), { nil: null });

/** Outcomes of the calls on document `d` with `opId`, 'threw' for a call that threw. */
function outcomesFor<
  Op extends { doc: number; opId: string | null },
  R extends { outcome: string },
>(calls: readonly Call<Op, R>[], d: number, opId: string): string[] {
  return calls
    .filter((call) => call.op.doc === d && call.op.opId === opId)
    .map((call) => (call.threw ? 'threw' : call.result.outcome));
}

// ---------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------

interface Order {
  _id: string;
  status: string;
  by?: string;
  _opIds?: string[];
}
type ClaimOp = { readonly doc: number; readonly claimant: string; readonly opId: string | null };
type ClaimOutcome = { readonly outcome: string; readonly status?: string; readonly by?: string };

const claimOpArb: fc.Arbitrary<ClaimOp> = fc.record({
  doc: docArb,
  claimant: fc.constantFrom('c0', 'c1', 'c2', 'c3'),
  opId: opIdArb,
});

async function executeClaim(ids: readonly string[], client: MongoClient, op: ClaimOp) {
  const options = {
    filter: { _id: ids[op.doc]! },
    field: 'status',
    from: 'pending',
    to: 'paid',
    set: { by: op.claimant },
  };
  const coll = collectionOf<Order>(client, 'orders');
  const result =
    op.opId === null
      ? await claimOnce(coll, options)
      : await claimOnce(coll, { ...options, opId: op.opId });
  if (result.outcome === 'notFound') return { outcome: result.outcome };
  const { status, by } = result.document;
  return by === undefined
    ? { outcome: result.outcome, status }
    : { outcome: result.outcome, status, by };
}

function verifyClaims(
  ids: readonly string[],
  calls: readonly Call<ClaimOp, ClaimOutcome>[],
  finals: Order[],
) {
  expectAcceptableErrors(calls, 'claim ');
  const byId = new Map(finals.map((doc) => [doc._id, doc]));
  for (let d = 0; d < DOCS; d++) {
    const doc = byId.get(ids[d]!)!;
    const mine = calls.filter((call) => call.op.doc === d);
    const winners = mine.filter((call) => !call.threw && call.result.outcome === 'claimed');
    const unsure = mine.some((call) => call.threw);
    // One claimant per document, and the document names it.
    check(winners.length <= 1, `order ${d} claimed twice`, winners);
    const winner = winners[0];
    if (winner !== undefined) {
      check(
        doc.status === 'paid' && doc.by === winner.op.claimant,
        `order ${d}: not the winner's`,
        {
          doc,
          winner: winner.op,
        },
      );
    } else if (!unsure) {
      check(doc.status === 'pending' && doc.by === undefined, `order ${d} paid by nobody`, doc);
    }
    for (const call of mine) {
      if (call.threw) continue;
      const { outcome, status } = call.result;
      check(
        ['claimed', 'alreadyClaimed', 'alreadyApplied'].includes(outcome),
        'claim outcome',
        call,
      );
      // Losers are told why, with a document that shows it.
      if (outcome === 'alreadyClaimed' || outcome === 'claimed') {
        check(status === 'paid', `${outcome} but the document is not paid`, call.result);
      }
      if (outcome === 'alreadyClaimed' && !unsure)
        check(winner !== undefined, 'alreadyClaimed, no winner');
    }
    // A repeated opId applies at most once; alreadyApplied only after it applied.
    for (const opId of OP_IDS) {
      const outcomes = outcomesFor(calls, d, opId);
      const applied = outcomes.filter((o) => o === 'claimed').length;
      check(applied <= 1, `opId ${opId} applied twice on order ${d}`, outcomes);
      if (!outcomes.includes('threw')) {
        check(
          (doc._opIds ?? []).includes(opId) === (applied === 1),
          `order ${d}: op log for ${opId}`,
          {
            outcomes,
            log: doc._opIds,
          },
        );
      }
    }
  }
}

test.prop(
  {
    schedule: scheduleArb(claimOpArb, CLIENTS, { maxSteps: 4 }),
    faults: faultsArb(['findAndModify', 'find', 'aggregate']),
  },
  propertyParameters(RUNS),
)(
  `claims: one claimant per document, losers told alreadyClaimed, opIds once${CHAOS ? ' (chaos)' : ''}`,
  async ({ schedule, faults }) => {
    await repeated(async () => {
      const ids = newIds('order');
      const orders = t.db.collection<Order>('orders');
      await orders.insertMany(ids.map((_id) => ({ _id, status: 'pending' })));
      const calls = await withFaults(t.db, clients.appName, faults, () =>
        runSchedule(clients.all, schedule, (client, op) => executeClaim(ids, client, op)),
      );
      verifyClaims(ids, calls, await orders.find({ _id: { $in: ids } }).toArray());
    });
  },
  propertyTimeout(RUNS),
);

// ---------------------------------------------------------------------------------------------
// Progress awards
// ---------------------------------------------------------------------------------------------

interface Player {
  _id: string;
  xp?: number;
  level?: number;
  badges?: string[];
  _opIds?: string[];
}
type AwardOp = { readonly doc: number; readonly xp: number; readonly opId: string | null };
type AwardOutcome = {
  readonly outcome: string;
  readonly levelsGained?: readonly number[];
  readonly badgesEarned?: readonly string[];
};

const THRESHOLDS = [30, 60, 90, 120, 150];
const RULES = [
  { badge: 'b25', counter: 'xp', atLeast: 25 },
  { badge: 'b70', counter: 'xp', atLeast: 70 },
  { badge: 'b140', counter: 'xp', atLeast: 140 },
];

const awardOpArb: fc.Arbitrary<AwardOp> = fc.record({
  doc: docArb,
  xp: fc.integer({ min: 1, max: 40 }),
  opId: opIdArb,
});

async function executeAward(ids: readonly string[], client: MongoClient, op: AwardOp) {
  const options = {
    filter: { _id: ids[op.doc]! },
    inc: { xp: op.xp },
    level: { field: 'level', counter: 'xp', thresholds: THRESHOLDS },
    badges: { field: 'badges', rules: RULES },
  };
  const coll = collectionOf<Player>(client, 'players');
  const result =
    op.opId === null
      ? await applyProgress(coll, options)
      : await applyProgress(coll, { ...options, opId: op.opId });
  return result.outcome === 'applied'
    ? {
        outcome: result.outcome,
        levelsGained: result.levelsGained,
        badgesEarned: result.badgesEarned,
      }
    : { outcome: result.outcome };
}

function verifyAwards(
  ids: readonly string[],
  calls: readonly Call<AwardOp, AwardOutcome>[],
  finals: Player[],
) {
  expectAcceptableErrors(calls, 'award ');
  const byId = new Map(finals.map((doc) => [doc._id, doc]));
  for (let d = 0; d < DOCS; d++) {
    const doc = byId.get(ids[d]!)!;
    const mine = calls.filter((call) => call.op.doc === d);
    const applied = mine.filter((call) => !call.threw && call.result.outcome === 'applied');
    const uncertain = mine.filter((call) => call.threw).map((call) => [call.op.xp]);
    const unsure = uncertain.length > 0;
    for (const call of mine) {
      if (!call.threw)
        check(['applied', 'alreadyApplied'].includes(call.result.outcome), 'award outcome', call);
    }
    // Exact totals: every applied award counted, once.
    const xp = doc.xp ?? 0;
    const known = applied.reduce((sum, call) => sum + call.op.xp, 0);
    check(isSubsetSum([xp - known], uncertain), `player ${d}: xp ≠ Σ applied awards`, {
      xp,
      known,
    });
    // Level and badges as derived from the final xp.
    const level = THRESHOLDS.filter((threshold) => xp >= threshold).length;
    const badges = RULES.filter((rule) => xp >= rule.atLeast).map((rule) => rule.badge);
    check((doc.level ?? 0) === level, `player ${d}: level does not follow xp`, doc);
    check(JSON.stringify(doc.badges ?? []) === JSON.stringify(badges), `player ${d}: badges`, doc);
    // Each level and each badge reported by exactly one call (at most one in chaos mode).
    const levels = applied.flatMap((call) =>
      call.threw ? [] : [...(call.result.levelsGained ?? [])],
    );
    const earned = applied.flatMap((call) =>
      call.threw ? [] : [...(call.result.badgesEarned ?? [])],
    );
    check(new Set(levels).size === levels.length, `player ${d}: a level reported twice`, levels);
    check(new Set(earned).size === earned.length, `player ${d}: a badge reported twice`, earned);
    check(
      levels.every((l) => l >= 1 && l <= level) && earned.every((b) => badges.includes(b)),
      `player ${d}: a gain reported that the document does not hold`,
      { levels, earned, doc },
    );
    if (!unsure) {
      check(levels.length === level, `player ${d}: a level reached but not reported`, {
        levels,
        doc,
      });
      check(earned.length === badges.length, `player ${d}: a badge earned but not reported`, {
        earned,
        doc,
      });
    }
    // Each opId applied once, and logged.
    for (const opId of OP_IDS) {
      const outcomes = outcomesFor(calls, d, opId);
      const count = outcomes.filter((o) => o === 'applied').length;
      check(count <= 1, `opId ${opId} applied twice on player ${d}`, outcomes);
      if (!outcomes.includes('threw')) {
        check(
          (doc._opIds ?? []).includes(opId) === (count === 1),
          `player ${d}: op log for ${opId}`,
          outcomes,
        );
        if (outcomes.includes('alreadyApplied'))
          check(count === 1, 'alreadyApplied, never applied', outcomes);
      }
    }
  }
}

test.prop(
  {
    schedule: scheduleArb(awardOpArb, CLIENTS, { maxSteps: 4 }),
    faults: faultsArb(['findAndModify', 'find']),
  },
  propertyParameters(RUNS),
)(
  `progress awards: exact totals, opIds once, each level and badge reported once${CHAOS ? ' (chaos)' : ''}`,
  async ({ schedule, faults }) => {
    await repeated(async () => {
      const ids = newIds('player');
      const players = t.db.collection<Player>('players');
      await players.insertMany(ids.map((_id) => ({ _id })));
      const calls = await withFaults(t.db, clients.appName, faults, () =>
        runSchedule(clients.all, schedule, (client, op) => executeAward(ids, client, op)),
      );
      verifyAwards(ids, calls, await players.find({ _id: { $in: ids } }).toArray());
    });
  },
  propertyTimeout(RUNS),
);

// ---------------------------------------------------------------------------------------------
// Versioned updates
// ---------------------------------------------------------------------------------------------

interface Account {
  _id: string;
  balance: number;
  version?: number;
  /** The amounts applied, in order: each write appends its own, computed from what it read. */
  entries: number[];
}
type DepositOp = { readonly doc: number; readonly amount: number };
type DepositOutcome = { readonly outcome: string; readonly balance?: number };

async function executeDeposit(ids: readonly string[], client: MongoClient, op: DepositOp) {
  const coll = collectionOf<Account>(client, 'accounts');
  // A read-compute-write no single operator expresses: the new balance and the entries list
  // are both computed from the document as read, so a stale read would lose a deposit.
  const result = await updateWithVersion(coll, {
    filter: { _id: ids[op.doc]! },
    update: (doc) => ({
      $set: { balance: doc.balance + op.amount, entries: [...doc.entries, op.amount] },
    }),
    // Four writers on two documents: enough attempts that contention never spends the budget.
    maxAttempts: 40,
    backoff: { initialDelayMs: 1, maxDelayMs: 10 },
  });
  return result.outcome === 'updated'
    ? { outcome: result.outcome, balance: result.document.balance }
    : { outcome: result.outcome };
}

function verifyDeposits(
  ids: readonly string[],
  calls: readonly Call<DepositOp, DepositOutcome>[],
  finals: Account[],
) {
  expectAcceptableErrors(calls, 'deposit ');
  const byId = new Map(finals.map((doc) => [doc._id, doc]));
  for (let d = 0; d < DOCS; d++) {
    const doc = byId.get(ids[d]!)!;
    const mine = calls.filter((call) => call.op.doc === d);
    const updated = mine.filter((call) => !call.threw && call.result.outcome === 'updated');
    const uncertain = mine.filter((call) => call.threw).map((call) => [call.op.amount, 1]);
    for (const call of mine) {
      if (!call.threw) check(call.result.outcome === 'updated', 'deposit outcome', call);
    }
    const known = updated.reduce((sum, call) => sum + call.op.amount, 0);
    // No lost update: the balance and the version count exactly the writes.
    check(
      isSubsetSum([doc.balance - known, (doc.version ?? 0) - updated.length], uncertain),
      `account ${d}: balance or version ≠ the writes`,
      { doc, known, writes: updated.length },
    );
    check(doc.balance === doc.entries.reduce((sum, x) => sum + x, 0), `account ${d}: entries`, doc);
    check(
      doc.entries.length === (doc.version ?? 0),
      `account ${d}: a write without a version bump`,
      doc,
    );
    // Each reported balance is one of the document's successive balances.
    const prefixes = doc.entries.map((_, i) =>
      doc.entries.slice(0, i + 1).reduce((a, b) => a + b, 0),
    );
    const reported = updated.map((call) => (call.threw ? -1 : (call.result.balance ?? -1)));
    check(
      new Set(reported).size === reported.length && reported.every((b) => prefixes.includes(b)),
      `account ${d}: reported balances are not the document's history`,
      { reported, prefixes },
    );
  }
}

test.prop(
  {
    schedule: scheduleArb(
      fc.record({ doc: docArb, amount: fc.integer({ min: 1, max: 9 }) }),
      CLIENTS,
      { maxSteps: 4 },
    ),
    faults: faultsArb(['findAndModify', 'find', 'update']),
  },
  propertyParameters(RUNS),
)(
  `versioned updates: no lost update, version = writes, reported documents are the history${CHAOS ? ' (chaos)' : ''}`,
  async ({ schedule, faults }) => {
    await repeated(async () => {
      const ids = newIds('account');
      const accounts = t.db.collection<Account>('accounts');
      await accounts.insertMany(ids.map((_id) => ({ _id, balance: 0, entries: [] })));
      const calls = await withFaults(t.db, clients.appName, faults, () =>
        runSchedule(clients.all, schedule, (client, op) => executeDeposit(ids, client, op)),
      );
      verifyDeposits(ids, calls, await accounts.find({ _id: { $in: ids } }).toArray());
    });
  },
  propertyTimeout(RUNS),
);
