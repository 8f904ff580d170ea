/**
 * withRetryingTransaction against a MongoDB-wire server, through the driver under test.
 *
 * Sources: mongodb/specifications source/transactions-convenient-api/
 * transactions-convenient-api.md (sequence of actions, "Handling errors inside the callback"),
 * source/transactions/transactions.md (error labels, commit retried with w: majority), the Node
 * driver's src/sessions.ts (withTransaction, commitTransaction retrying once on
 * RetryableWriteError), and ../shared/MONGODB.md ("Error labels").
 *
 * Fail points are scoped to a dedicated client's appName and turned off after each test
 * (useFailPointClients), since other files share the server.
 */
import {
  type ClientSession,
  type Document,
  MongoClient,
  MongoServerError,
  type TransactionOptions,
} from 'mongodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type EmbeddedMongo, startStandalone } from '../offline-server/src/embedded.js';
import { isTransactionsUnsupported } from '../src/driver.js';
import {
  GiveUpReason,
  InvalidArgumentError,
  isRetryBudgetExhaustedError,
  isTransactionsUnsupportedError,
  RetryBudgetExhaustedError,
  TransactionsUnsupportedError,
} from '../src/errors.js';
import {
  backoffDelay,
  type TransactionAttempt,
  type TransactionRetryEvent,
  TransactionRetryReason,
  validateBackoff,
  type WithRetryingTransactionOptions,
  withRetryingTransaction,
} from '../src/transaction.js';
import { validator } from '../src/validate.js';
import { rejectionOf, sleep } from './support/async.js';
import { failCommand, useFailPointClients } from './support/failpoints.js';
import { backendKind, useTestDatabase } from './support/mongo.js';
import { barrier, useRaceClients } from './support/race.js';

interface Account {
  _id: string | number;
  balance?: number;
  by?: string;
}

const t = useTestDatabase('transaction');

/** A fresh collection, created before any transaction writes to it (production considerations). */
async function fresh(prefix: string, docs: Account[] = []): Promise<string> {
  const name = t.uniqueName(prefix);
  await t.db.createCollection(name);
  if (docs.length > 0) await t.db.collection<Account>(name).insertMany(docs);
  return name;
}

const collOf = (client: MongoClient, name: string) =>
  client.db(t.db.databaseName).collection<Account>(name);

/** Records every onRetry event. */
function retries() {
  const events: TransactionRetryEvent[] = [];
  return {
    events,
    onRetry: (event: TransactionRetryEvent) => {
      events.push(event);
    },
    delays: () => events.map((event) => event.delayMs),
  };
}

/** The session's lsid, read from a recorded command. */
function lsidOf(command: Document | undefined): Document {
  const lsid = command?.lsid as Document | undefined;
  if (lsid === undefined) throw new Error('command carried no lsid');
  return lsid;
}

describe('success', () => {
  it('returns the callback value; the wire shows the callback commands, then exactly one commitTransaction', async () => {
    const name = await fresh('ok', [{ _id: 'alice', balance: 50 }]);
    const coll = collOf(t.client, name);
    const seen: number[] = [];
    t.commands.reset();
    const result = await withRetryingTransaction(t.client, async (session, { attempt }) => {
      seen.push(attempt);
      await coll.updateOne({ _id: 'alice' }, { $inc: { balance: -20 } }, { session });
      await coll.insertOne({ _id: 'bob', balance: 20 }, { session });
      return { moved: 20 };
    });
    expect(result).toEqual({ moved: 20 });
    expect(seen).toEqual([1]);
    expect(t.commands.names()).toEqual(['update', 'insert', 'commitTransaction']);
    const [first, second] = t.commands.started;
    expect(first?.command.startTransaction).toBe(true);
    expect(String(second?.command.txnNumber)).toBe(String(first?.command.txnNumber));
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 'alice', balance: 30 },
      { _id: 'bob', balance: 20 },
    ]);
  });

  it('transactionOptions reach startTransaction: read concern on the first command, write concern on the commit', async () => {
    const name = await fresh('opts');
    const coll = collOf(t.client, name);
    t.commands.reset();
    await withRetryingTransaction(
      t.client,
      async (session) => {
        await coll.insertOne({ _id: 1 }, { session });
      },
      {
        transactionOptions: {
          readConcern: { level: 'snapshot' },
          writeConcern: { w: 'majority' },
          maxCommitTimeMS: 5_000,
        } as TransactionOptions,
      },
    );
    const [insert, commit] = t.commands.started;
    expect(insert?.command.readConcern).toMatchObject({ level: 'snapshot' });
    expect(commit?.commandName).toBe('commitTransaction');
    expect(commit?.command.writeConcern).toMatchObject({ w: 'majority' });
    expect(commit?.command.maxTimeMS).toBe(5_000);
  });

  it('a callback that committed the transaction itself is not committed again (spec step 8)', async () => {
    const name = await fresh('selfcommit');
    const coll = collOf(t.client, name);
    t.commands.reset();
    const result = await withRetryingTransaction(t.client, async (session) => {
      await coll.insertOne({ _id: 1 }, { session });
      await session.commitTransaction();
      return 'mine';
    });
    expect(result).toBe('mine');
    expect(t.commands.names()).toEqual(['insert', 'commitTransaction']);
    expect(await coll.countDocuments()).toBe(1);
  });

  it('a callback that aborted the transaction itself: its value is returned, nothing is written, no commit', async () => {
    const name = await fresh('selfabort');
    const coll = collOf(t.client, name);
    t.commands.reset();
    const result = await withRetryingTransaction(t.client, async (session) => {
      await coll.insertOne({ _id: 1 }, { session });
      await session.abortTransaction();
      return 'changed my mind';
    });
    expect(result).toBe('changed my mind');
    expect(t.commands.names()).toEqual(['insert', 'abortTransaction']);
    expect(await coll.countDocuments()).toBe(0);
  });
});

describe('non-transient errors', () => {
  it('an error thrown by the callback is rethrown unchanged, the transaction aborted, nothing written, no retry', async () => {
    const name = await fresh('err', [{ _id: 'alice', balance: 50 }]);
    const coll = collOf(t.client, name);
    const thrown = new Error('insufficient funds');
    const log = retries();
    let runs = 0;
    t.commands.reset();
    const error = await rejectionOf(
      withRetryingTransaction(
        t.client,
        async (session) => {
          runs += 1;
          await coll.updateOne({ _id: 'alice' }, { $inc: { balance: -80 } }, { session });
          throw thrown;
        },
        { onRetry: log.onRetry },
      ),
    );
    expect(error).toBe(thrown);
    expect(runs).toBe(1);
    expect(log.events).toEqual([]);
    expect(t.commands.names()).toEqual(['update', 'abortTransaction']);
    expect(await coll.findOne({ _id: 'alice' })).toEqual({ _id: 'alice', balance: 50 });
  });
});

describe('retries, with fail points', () => {
  const failPoints = useFailPointClients(() => t.db, 'txn');

  it('TransientTransactionError twice (WriteConflict 112 on insert): the callback runs 3 times, commits once, writes once', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const name = await fresh('transient');
    await failCommand(t.db, { times: 2 }, { failCommands: ['insert'], errorCode: 112, appName });
    const log = retries();
    const seen: number[] = [];
    commands.reset();
    const result = await withRetryingTransaction(
      client,
      async (session, { attempt }) => {
        seen.push(attempt);
        await collOf(client, name).insertOne(
          { _id: 'once', by: `attempt ${attempt}` },
          { session },
        );
        return attempt;
      },
      { onRetry: log.onRetry },
    );
    expect(result).toBe(3);
    expect(seen).toEqual([1, 2, 3]);
    expect(log.events.map(({ attempt, reason }) => ({ attempt, reason }))).toEqual([
      { attempt: 1, reason: TransactionRetryReason.TransientTransactionError },
      { attempt: 2, reason: TransactionRetryReason.TransientTransactionError },
    ]);
    for (const event of log.events) expect((event.error as MongoServerError).code).toBe(112);
    // Default (adaptive) policy: full jitter under a cap of 500 ms (its units are measured
    // durations, pinned exactly on a controlled clock in tests/mutants/transaction.test.ts).
    for (const delay of log.delays()) {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(500);
    }
    expect(commands.names()).toEqual([
      'insert',
      'abortTransaction',
      'insert',
      'abortTransaction',
      'insert',
      'commitTransaction',
    ]);
    expect(await t.db.collection<Account>(name).find({}).toArray()).toEqual([
      { _id: 'once', by: 'attempt 3' },
    ]);
  });

  it('UnknownTransactionCommitResult on commit: only the commit is sent again (w: majority), the callback ran once', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const name = await fresh('unknown');
    // Explicit labels, no RetryableWriteError: the driver does not retry this commit itself.
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['commitTransaction'],
        errorCode: 6,
        errorLabels: ['UnknownTransactionCommitResult'],
        appName,
      },
    );
    const log = retries();
    let runs = 0;
    commands.reset();
    await withRetryingTransaction(
      client,
      async (session) => {
        runs += 1;
        await collOf(client, name).insertOne({ _id: 1 }, { session });
      },
      { onRetry: log.onRetry },
    );
    expect(runs).toBe(1);
    expect(commands.names()).toEqual(['insert', 'commitTransaction', 'commitTransaction']);
    expect(commands.started[2]?.command.writeConcern).toMatchObject({ w: 'majority' });
    expect(log.events.map(({ attempt, reason }) => ({ attempt, reason }))).toEqual([
      { attempt: 1, reason: TransactionRetryReason.UnknownCommitResult },
    ]);
    expect(await t.db.collection<Account>(name).countDocuments()).toBe(1);
  });

  // HostUnreachable (6) rather than ShutdownInProgress (91): 91 also makes the driver mark the
  // server unknown (SDAM "node is shutting down") and wait ~500 ms for a heartbeat.
  it('a retryable commit error (HostUnreachable 6) twice: the driver re-sends once, we re-send once more', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const name = await fresh('unknown91');
    // The server labels 6 on commit RetryableWriteError + UnknownTransactionCommitResult.
    await failCommand(
      t.db,
      { times: 2 },
      { failCommands: ['commitTransaction'], errorCode: 6, appName },
    );
    const log = retries();
    let runs = 0;
    commands.reset();
    await withRetryingTransaction(
      client,
      async (session) => {
        runs += 1;
        await collOf(client, name).insertOne({ _id: 1 }, { session });
      },
      { onRetry: log.onRetry },
    );
    expect(runs).toBe(1);
    // 1st: fails; 2nd: the driver's own retry, fails; 3rd: ours, commits.
    expect(commands.names()).toEqual([
      'insert',
      'commitTransaction',
      'commitTransaction',
      'commitTransaction',
    ]);
    expect(log.events).toHaveLength(1);
    expect(log.events[0]?.reason).toBe(TransactionRetryReason.UnknownCommitResult);
    expect(log.events[0]?.error).toMatchObject({ code: 6 });
    expect(await t.db.collection<Account>(name).countDocuments()).toBe(1);
  });

  it('a commit failing with MaxTimeMSExpired (50), even labelled UnknownTransactionCommitResult, is not retried', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const name = await fresh('maxtime');
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['commitTransaction'],
        errorCode: 50,
        errorLabels: ['UnknownTransactionCommitResult'],
        appName,
      },
    );
    const log = retries();
    commands.reset();
    const error = await rejectionOf(
      withRetryingTransaction(
        client,
        async (session) => {
          await collOf(client, name).insertOne({ _id: 1 }, { session });
        },
        { onRetry: log.onRetry },
      ),
    );
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(50);
    expect((error as MongoServerError).hasErrorLabel('UnknownTransactionCommitResult')).toBe(true);
    expect(commands.names()).toEqual(['insert', 'commitTransaction']);
    expect(log.events).toEqual([]);
    // The fail point answered in place of the commit: the transaction is still open on the
    // server. End it so it holds no locks until the lifetime limit.
    await t.client
      .db('admin')
      .command({ killSessions: [{ id: lsidOf(commands.started[0]?.command).id }] });
    expect(await t.db.collection<Account>(name).countDocuments()).toBe(0);
  });

  it('maxAttempts: an always-transient insert gives up with reason maxAttempts after exactly maxAttempts runs', async () => {
    const { client, appName } = await failPoints.appClient();
    const name = await fresh('maxattempts');
    await failCommand(t.db, 'alwaysOn', { failCommands: ['insert'], errorCode: 112, appName });
    const log = retries();
    const seen: number[] = [];
    const error = await rejectionOf(
      withRetryingTransaction(
        client,
        async (session, { attempt }) => {
          seen.push(attempt);
          await collOf(client, name).insertOne({ _id: 1 }, { session });
        },
        { maxAttempts: 4, backoff: { initialDelayMs: 1 }, onRetry: log.onRetry },
      ),
    );
    expect(error).toBeInstanceOf(RetryBudgetExhaustedError);
    const giveUp = error as RetryBudgetExhaustedError;
    expect(giveUp.reason).toBe(GiveUpReason.MaxAttempts);
    expect(giveUp.attempts).toBe(4);
    expect(giveUp.cause).toBeInstanceOf(MongoServerError);
    expect((giveUp.cause as MongoServerError).code).toBe(112);
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(log.events).toHaveLength(3);
    expect(await t.db.collection<Account>(name).countDocuments()).toBe(0);
  });

  it('timeoutMs: an always-transient insert gives up with reason timeout, never sleeping past the deadline', async () => {
    const { client, appName } = await failPoints.appClient();
    const name = await fresh('timeout');
    await failCommand(t.db, 'alwaysOn', { failCommands: ['insert'], errorCode: 112, appName });
    const timeoutMs = 200;
    /** When each backoff would end, in ms from the call. */
    const sleepEnds: number[] = [];
    const started = performance.now();
    const error = await rejectionOf(
      withRetryingTransaction(
        client,
        async (session) => {
          await collOf(client, name).insertOne({ _id: 1 }, { session });
        },
        {
          timeoutMs,
          backoff: { initialDelayMs: 10, factor: 1, jitter: 'none' },
          onRetry: ({ delayMs }) => {
            sleepEnds.push(performance.now() - started + delayMs);
          },
        },
      ),
    );
    const wall = performance.now() - started;
    expect(isRetryBudgetExhaustedError(error)).toBe(true);
    const giveUp = error as RetryBudgetExhaustedError;
    expect(giveUp.reason).toBe(GiveUpReason.Timeout);
    expect((giveUp.cause as MongoServerError).code).toBe(112);
    // Each reported wait precedes a further attempt, except that the deadline may be found
    // passed right after the hook (on a loaded machine): then the runner gives up instead of
    // sleeping, and the last report has no attempt after it.
    expect(giveUp.attempts).toBeGreaterThanOrEqual(sleepEnds.length);
    expect(giveUp.attempts).toBeLessThanOrEqual(sleepEnds.length + 1);
    expect(giveUp.attempts).toBeGreaterThanOrEqual(2);
    // Every wait ended before the deadline (1 ms: this clock started just before the call's)…
    for (const end of sleepEnds) expect(end).toBeLessThan(timeoutMs + 1);
    // …and it gave up once the next 10 ms wait would not: at 190 ms or later. Only the last
    // attempt's own round trips may run past the deadline; the bound below is loose on purpose
    // (a loaded CI machine), it catches a runner that keeps waiting, not a slow one.
    expect(giveUp.elapsedMs).toBeGreaterThanOrEqual(timeoutMs - 10);
    expect(wall).toBeLessThan(timeoutMs + 2_000);
  });

  it("exact backoff with jitter 'none': initial 10, factor 2, max 50 waits 10, 20, 40, 50 ms", async () => {
    const { client, appName } = await failPoints.appClient();
    const name = await fresh('exact');
    await failCommand(t.db, 'alwaysOn', { failCommands: ['insert'], errorCode: 112, appName });
    const log = retries();
    const started = performance.now();
    const error = await rejectionOf(
      withRetryingTransaction(
        client,
        async (session) => {
          await collOf(client, name).insertOne({ _id: 1 }, { session });
        },
        {
          maxAttempts: 5,
          backoff: { initialDelayMs: 10, factor: 2, maxDelayMs: 50, jitter: 'none' },
          onRetry: log.onRetry,
        },
      ),
    );
    expect((error as RetryBudgetExhaustedError).reason).toBe(GiveUpReason.MaxAttempts);
    expect(log.delays()).toEqual([10, 20, 40, 50]);
    expect(log.events.map((event) => event.attempt)).toEqual([1, 2, 3, 4]);
    // It really waited: 120 ms of backoff in all.
    expect(performance.now() - started).toBeGreaterThanOrEqual(115);
  });

  it('full jitter: every wait lies in [0, min(initial × factor^(n−1), max)) and they vary', async () => {
    const { client, appName } = await failPoints.appClient();
    const name = await fresh('jitter');
    await failCommand(t.db, 'alwaysOn', { failCommands: ['insert'], errorCode: 112, appName });
    const log = retries();
    await rejectionOf(
      withRetryingTransaction(
        client,
        async (session) => {
          await collOf(client, name).insertOne({ _id: 1 }, { session });
        },
        {
          maxAttempts: 10,
          backoff: { initialDelayMs: 4, factor: 2, maxDelayMs: 30 },
          onRetry: log.onRetry,
        },
      ),
    );
    const caps = [4, 8, 16, 30, 30, 30, 30, 30, 30];
    expect(log.delays()).toHaveLength(caps.length);
    log.delays().forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(caps[i] ?? 0);
    });
    // Exactly the cap every time would mean no jitter (probability zero with Math.random).
    expect(log.delays().some((delay, i) => delay !== caps[i])).toBe(true);
  });

  it("the specification's sequence when backoff is given: retry k waits min(5 × 1.5^(k−1), 500) ms, 5 ms first (driver 7.1+ waits 7.5 ms first)", () => {
    // transactions-convenient-api.md, Sequence of Actions 2.1: backoffMS = jitter ×
    // min(BACKOFF_INITIAL × 1.5^(transactionAttempt − 1), BACKOFF_MAX), BACKOFF_INITIAL 5,
    // BACKOFF_MAX 500, transactionAttempt incremented at step 3, so 1 at the first retry.
    const spec = (k: number) => Math.min(5 * 1.5 ** (k - 1), 500);
    const exact = validateBackoff(validator('test'), { jitter: 'none' });
    const sequence = Array.from({ length: 16 }, (_, i) => backoffDelay(exact, i + 1));
    expect(sequence.slice(0, 4)).toEqual([5, 7.5, 11.25, 16.875]);
    expect(sequence).toEqual(Array.from({ length: 16 }, (_, i) => spec(i + 1)));
    expect(sequence.slice(12)).toEqual([500, 500, 500, 500]);
    // Node driver 7.9's sessions.ts computes 5 × 1.5^transactionAttempt (7.5 ms first): not this.
    expect(sequence[0]).not.toBe(5 * 1.5 ** 1);
    // Full jitter multiplies the capped value by the random draw, as the specification does.
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.25);
    try {
      const jittered = validateBackoff(validator('test'), {});
      expect([1, 2, 3, 13].map((k) => backoffDelay(jittered, k))).toEqual([
        1.25, 1.875, 2.8125, 125,
      ]);
    } finally {
      random.mockRestore();
    }
  });

  describe('adaptive policy (no backoff given): waits measured in the client’s transaction holding time', () => {
    afterEach(() => {
      vi.restoreAllMocks();
    });
    /**
     * One transaction inserting `_id` on a fresh collection, after `conflicts` WriteConflicts;
     * each attempt first spends `holdMs` (a slow transaction). Returns the waits reported.
     */
    async function conflicted(
      fp: { client: MongoClient; appName: string },
      conflicts: number,
      { holdMs = 0, ...options }: WithRetryingTransactionOptions & { holdMs?: number } = {},
    ): Promise<number[]> {
      const name = await fresh('adaptive');
      if (conflicts > 0) {
        await failCommand(
          t.db,
          { times: conflicts },
          { failCommands: ['insert'], errorCode: 112, appName: fp.appName },
        );
      }
      const log = retries();
      await withRetryingTransaction(
        fp.client,
        async (session) => {
          if (holdMs > 0) await sleep(holdMs);
          await collOf(fp.client, name).insertOne({ _id: 1 }, { session });
        },
        { ...options, onRetry: log.onRetry },
      );
      expect(await t.db.collection<Account>(name).countDocuments()).toBe(1);
      return log.delays();
    }
    // With Math.random at 0.5 a wait is half of min(unit × 3, 500): any unit ≥ 500 / 3 ms
    // gives exactly 250. Those units come from sleeps, so they are lower bounds whatever the
    // load: exact values, no wall-clock assumption. (5 ms steps, the former default, gave 2.5.)
    const CAPPED = 250;

    it('the unit is the duration of a committed transaction on the client, carried to its next calls', async () => {
      vi.spyOn(Math, 'random').mockReturnValue(0.5);
      const a = await failPoints.appClient();
      // No commit measured yet: the unit is the failed attempt's own duration (≥ 200 ms here).
      expect(await conflicted(a, 1, { holdMs: 200 })).toEqual([CAPPED]);
      // That call's commit held the documents ≥ 200 ms: a quick attempt of the next call
      // still waits in that unit, the client's, not in its own few milliseconds.
      expect(await conflicted(a, 1)).toEqual([CAPPED]);
    });

    it('a given backoff is exactly what was set, and its commits do not move the client’s unit', async () => {
      vi.spyOn(Math, 'random').mockReturnValue(0.5);
      const a = await failPoints.appClient();
      expect(await conflicted(a, 1, { holdMs: 200 })).toEqual([CAPPED]);
      // Slow or not, a call with `backoff` waits its sequence…
      expect(await conflicted(a, 3, { holdMs: 1, backoff: { jitter: 'none' } })).toEqual([
        5, 7.5, 11.25,
      ]);
      // … and its commit (a few ms) left the client's unit at ≥ 200 ms.
      expect(await conflicted(a, 1)).toEqual([CAPPED]);
    });

    it('an unknown commit result is not contention: its wait follows the call’s own attempt', async () => {
      vi.spyOn(Math, 'random').mockReturnValue(0.5);
      const a = await failPoints.appClient();
      const name = await fresh('adaptiveucr');
      await failCommand(
        t.db,
        { times: 2 },
        {
          failCommands: ['commitTransaction'],
          errorCode: 91,
          errorLabels: ['UnknownTransactionCommitResult'],
          appName: a.appName,
        },
      );
      const log = retries();
      await withRetryingTransaction(
        a.client,
        async (session) => {
          await sleep(200);
          await collOf(a.client, name).insertOne({ _id: 1 }, { session });
        },
        { onRetry: log.onRetry },
      );
      const unknown = log.events.filter(
        (e) => e.reason === TransactionRetryReason.UnknownCommitResult,
      );
      expect(unknown.length).toBeGreaterThan(0);
      // Attempt n waits 0.5 × 5 × 1.5^(n − 1): the specification's sequence, not a holding time
      // (the attempt took ≥ 200 ms, which would have given 250).
      for (const event of unknown) expect(event.delayMs).toBe(0.5 * 5 * 1.5 ** (event.attempt - 1));
    });
  });

  it('aborting the signal during a backoff rejects at once with its reason; nothing is committed', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const name = await fresh('abortwait');
    await failCommand(t.db, 'alwaysOn', { failCommands: ['insert'], errorCode: 112, appName });
    const controller = new AbortController();
    const reason = new Error('request closed');
    let runs = 0;
    commands.reset();
    const started = performance.now();
    const error = await rejectionOf(
      withRetryingTransaction(
        client,
        async (session) => {
          runs += 1;
          await collOf(client, name).insertOne({ _id: 1 }, { session });
        },
        {
          signal: controller.signal,
          backoff: { initialDelayMs: 5_000, jitter: 'none' },
          onRetry: () => {
            setTimeout(() => controller.abort(reason), 20);
          },
        },
      ),
    );
    expect(error).toBe(reason);
    // Well under the 5 s wait: the abort interrupted it (loose for loaded CI machines).
    expect(performance.now() - started).toBeLessThan(4_000);
    expect(runs).toBe(1);
    expect(commands.names()).toEqual(['insert', 'abortTransaction']);
    expect(await t.db.collection<Account>(name).countDocuments()).toBe(0);
  });

  it('an onRetry hook that throws ends the call with its error (no swallowing); nothing is committed', async () => {
    const { client, appName } = await failPoints.appClient();
    const name = await fresh('hookthrows');
    await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: 112, appName });
    const hookError = new Error('metrics backend down');
    let runs = 0;
    const error = await rejectionOf(
      withRetryingTransaction(
        client,
        async (session) => {
          runs += 1;
          await collOf(client, name).insertOne({ _id: 1 }, { session });
        },
        {
          onRetry: () => {
            throw hookError;
          },
        },
      ),
    );
    expect(error).toBe(hookError);
    expect(runs).toBe(1);
    expect(await t.db.collection<Account>(name).countDocuments()).toBe(0);
  });

  // The "two NoSuchTransaction in a row" guard counts consecutive attempts only: any other
  // transient error in between resets it, since a failover or killSessions can each end one
  // transaction with NoSuchTransaction. onRetry (awaited before the next try) sets the fault
  // the next try meets.
  const noSuchTransaction = {
    errorCode: 251,
    errorLabels: ['TransientTransactionError'],
  };
  const writeConflict = { errorCode: 112, errorLabels: ['TransientTransactionError'] };

  it('callback path: NoSuchTransaction, WriteConflict, NoSuchTransaction is not "twice in a row": retried to success, written once', async () => {
    const { client, appName } = await failPoints.appClient();
    const name = await fresh('nst-callback');
    const next = [writeConflict, noSuchTransaction];
    const arm = async (fault: Document) =>
      failCommand(t.db, { times: 1 }, { failCommands: ['insert'], appName, ...fault });
    await arm(noSuchTransaction);
    const log = retries();
    const result = await withRetryingTransaction(
      client,
      async (session, { attempt }) => {
        await collOf(client, name).insertOne(
          { _id: 'once', by: `attempt ${attempt}` },
          { session },
        );
        return attempt;
      },
      {
        onRetry: async (event) => {
          log.onRetry(event);
          const fault = next.shift();
          if (fault !== undefined) await arm(fault);
        },
      },
    );
    expect(result).toBe(4);
    expect(log.events.map((event) => (event.error as MongoServerError).code)).toEqual([
      251, 112, 251,
    ]);
    expect(new Set(log.events.map((event) => event.reason))).toEqual(
      new Set([TransactionRetryReason.TransientTransactionError]),
    );
    expect(await t.db.collection<Account>(name).find({}).toArray()).toEqual([
      { _id: 'once', by: 'attempt 4' },
    ]);
  });

  it('commit path: NoSuchTransaction, WriteConflict, NoSuchTransaction at commit is not "twice in a row": retried to success, written once', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const name = await fresh('nst-commit');
    const next = [writeConflict, noSuchTransaction];
    const arm = async (fault: Document) =>
      failCommand(t.db, { times: 1 }, { failCommands: ['commitTransaction'], appName, ...fault });
    await arm(noSuchTransaction);
    const log = retries();
    commands.reset();
    const result = await withRetryingTransaction(
      client,
      async (session, { attempt }) => {
        await collOf(client, name).insertOne(
          { _id: 'once', by: `attempt ${attempt}` },
          { session },
        );
        return attempt;
      },
      {
        onRetry: async (event) => {
          log.onRetry(event);
          const fault = next.shift();
          if (fault !== undefined) await arm(fault);
        },
      },
    );
    expect(result).toBe(4);
    expect(log.events.map((event) => (event.error as MongoServerError).code)).toEqual([
      251, 112, 251,
    ]);
    expect(new Set(log.events.map((event) => event.reason))).toEqual(
      new Set([TransactionRetryReason.TransientTransactionError]),
    );
    expect(commands.names()).toEqual(
      Array.from({ length: 4 }, () => ['insert', 'commitTransaction']).flat(),
    );
    expect(await t.db.collection<Account>(name).find({}).toArray()).toEqual([
      { _id: 'once', by: 'attempt 4' },
    ]);
  });

  it("the caller aborts during the callback, whose next command then fails transiently: rejects with the signal's reason, no onRetry, no second run", async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const name = await fresh('abort-transient');
    await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], appName, ...writeConflict });
    const controller = new AbortController();
    const reason = new Error('request cancelled');
    const log = retries();
    let runs = 0;
    commands.reset();
    const error = await rejectionOf(
      withRetryingTransaction(
        client,
        async (session) => {
          runs += 1;
          controller.abort(reason);
          await collOf(client, name).insertOne({ _id: 1 }, { session });
        },
        { signal: controller.signal, onRetry: log.onRetry },
      ),
    );
    expect(error).toBe(reason);
    expect(log.events).toEqual([]);
    expect(runs).toBe(1);
    expect(commands.names()).toEqual(['insert', 'abortTransaction']);
    expect(await t.db.collection<Account>(name).countDocuments()).toBe(0);
  });
});

describe('cancellation and the time budget', () => {
  it('an already-aborted signal rejects with its reason; the callback never runs and no command is sent', async () => {
    const reason = new Error('cancelled before start');
    let runs = 0;
    t.commands.reset();
    const error = await rejectionOf(
      withRetryingTransaction(
        t.client,
        async () => {
          runs += 1;
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(error).toBe(reason);
    expect(runs).toBe(0);
    expect(t.commands.names()).toEqual([]);
  });

  it('a signal aborted while the callback runs: no commit, the transaction is aborted, the reason is thrown', async () => {
    const name = await fresh('abortmid');
    const coll = collOf(t.client, name);
    const controller = new AbortController();
    const reason = new Error('shutting down');
    t.commands.reset();
    const error = await rejectionOf(
      withRetryingTransaction(
        t.client,
        async (session, { signal }) => {
          await coll.insertOne({ _id: 1 }, { session });
          controller.abort(reason);
          expect(signal.aborted).toBe(true);
          expect(signal.reason).toBe(reason);
          return 'done';
        },
        { signal: controller.signal },
      ),
    );
    expect(error).toBe(reason);
    expect(t.commands.names()).toEqual(['insert', 'abortTransaction']);
    expect(await coll.countDocuments()).toBe(0);
  });

  it("the callback's signal aborts when the time budget runs out, with a RetryBudgetExhaustedError (timeout) as reason", async () => {
    const name = await fresh('budgetsignal');
    const coll = collOf(t.client, name);
    let inside: AbortSignal | undefined;
    const error = await rejectionOf(
      withRetryingTransaction(
        t.client,
        async (session, { signal }) => {
          inside = signal;
          await coll.insertOne({ _id: 1 }, { session });
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          signal.throwIfAborted();
        },
        { timeoutMs: 150 },
      ),
    );
    expect(inside?.aborted).toBe(true);
    expect(error).toBe(inside?.reason);
    expect(isRetryBudgetExhaustedError(error)).toBe(true);
    const giveUp = error as RetryBudgetExhaustedError;
    expect(giveUp.reason).toBe(GiveUpReason.Timeout);
    expect(giveUp.attempts).toBe(1);
    expect(giveUp.elapsedMs).toBeGreaterThanOrEqual(145);
    expect(await coll.countDocuments()).toBe(0);
  });

  describe('the AbortController is made only when something can listen to it', () => {
    /** Counts AbortControllers constructed while `run` runs (the driver makes none here). */
    async function controllersMadeBy(run: () => Promise<unknown>): Promise<number> {
      let made = 0;
      const Original = globalThis.AbortController;
      vi.stubGlobal(
        'AbortController',
        class extends Original {
          constructor() {
            super();
            made += 1;
          }
        },
      );
      try {
        await run();
      } finally {
        vi.unstubAllGlobals();
      }
      return made;
    }

    it('none for a callback that never reads `signal`, with no caller signal; one when it reads it or a signal is given', async () => {
      const name = await fresh('lazyctl');
      const coll = collOf(t.client, name);
      const insert = (id: number) => async (session: ClientSession) => {
        await coll.insertOne({ _id: id }, { session });
      };
      expect(await controllersMadeBy(() => withRetryingTransaction(t.client, insert(1)))).toBe(0);
      const reads = await controllersMadeBy(() =>
        withRetryingTransaction(t.client, async (session, { signal }) => {
          expect(signal.aborted).toBe(false);
          await insert(2)(session);
        }),
      );
      expect(reads).toBe(1);
      const caller = new AbortController();
      expect(
        await controllersMadeBy(() =>
          withRetryingTransaction(t.client, insert(3), { signal: caller.signal }),
        ),
      ).toBe(1);
      expect(await coll.countDocuments()).toBe(3);
    });

    it('a signal first read after the deadline is already aborted with the timeout give-up; the call still commits', async () => {
      const name = await fresh('lazylate');
      const coll = collOf(t.client, name);
      const seen = await withRetryingTransaction(
        t.client,
        async (session, attempt) => {
          await coll.insertOne({ _id: 1 }, { session });
          await sleep(80);
          const { signal } = attempt; // first read, past the 30 ms budget
          return { aborted: signal.aborted, reason: signal.reason as unknown };
        },
        { timeoutMs: 30 },
      );
      expect(seen.aborted).toBe(true);
      expect(isRetryBudgetExhaustedError(seen.reason)).toBe(true);
      expect((seen.reason as RetryBudgetExhaustedError).reason).toBe(GiveUpReason.Timeout);
      expect(await coll.countDocuments()).toBe(1);
    });

    it('a signal first read in the second attempt is the one the first attempt would have had, and stays the same object', async () => {
      const name = await fresh('lazysame', [{ _id: 'taken' }]);
      const coll = collOf(t.client, name);
      const signals: AbortSignal[] = [];
      let runs = 0;
      await withRetryingTransaction(t.client, async (session, attempt) => {
        runs += 1;
        await coll.insertOne({ _id: runs }, { session });
        if (runs === 1) {
          // Transient on the first run, without touching the signal.
          throw new MongoServerError({
            errmsg: 'conflict',
            code: 112,
            errorLabels: ['TransientTransactionError'],
          });
        }
        signals.push(attempt.signal, attempt.signal);
      });
      expect(runs).toBe(2);
      expect(signals[0]).toBe(signals[1]);
      expect(signals[0]?.aborted).toBe(false);
    });
  });

  it('a callback that finishes after the deadline is still committed: the budget limits retries, not finished work', async () => {
    const name = await fresh('late');
    const coll = collOf(t.client, name);
    const result = await withRetryingTransaction(
      t.client,
      async (session, { signal }) => {
        await coll.insertOne({ _id: 1 }, { session });
        await sleep(120);
        return signal.aborted;
      },
      { timeoutMs: 50 },
    );
    expect(result).toBe(true);
    expect(await coll.countDocuments()).toBe(1);
  });
});

describe('a callback that swallows a server error', () => {
  /** Inserts a duplicate _id inside the transaction and ignores the E11000. */
  const swallowing =
    (coll: ReturnType<typeof collOf>, then?: (session: ClientSession) => Promise<unknown>) =>
    async (session: ClientSession) => {
      await coll.insertOne({ _id: 'new' }, { session });
      try {
        await coll.insertOne({ _id: 'taken' }, { session });
      } catch (error) {
        if ((error as MongoServerError).code !== 11000) throw error;
      }
      await then?.(session);
      return 'looks fine';
    };

  it('commit says NoSuchTransaction twice in a row: gives up quickly with reason abortedBeforeCommit', async () => {
    const name = await fresh('swallow', [{ _id: 'taken' }]);
    const coll = collOf(t.client, name);
    const log = retries();
    t.commands.reset();
    const started = performance.now();
    const error = await rejectionOf(
      withRetryingTransaction(t.client, swallowing(coll), { onRetry: log.onRetry }),
    );
    const wall = performance.now() - started;
    expect(error).toBeInstanceOf(RetryBudgetExhaustedError);
    const giveUp = error as RetryBudgetExhaustedError;
    expect(giveUp.reason).toBe(GiveUpReason.AbortedBeforeCommit);
    expect(giveUp.attempts).toBe(2);
    expect((giveUp.cause as MongoServerError).code).toBe(251);
    // The whole message: the cause, the likely mistake and the remedy; the prefix once.
    expect(giveUp.message).toBe(
      'withRetryingTransaction: the server had already aborted the transaction when the callback ' +
        'finished, 2 attempts in a row (NoSuchTransaction). Most likely the callback catches a ' +
        'server error (such as a duplicate key, E11000) and carries on: a failed command aborts ' +
        'the transaction on the server. Rethrow errors inside the callback, and check expected ' +
        'conflicts before writing instead. (A callback running longer than the server’s ' +
        'transactionLifetimeLimitSeconds ends the same way.)',
    );
    // The default budget is 120 s; this takes two attempts' round trips (loose bound for CI).
    expect(wall).toBeLessThan(10_000);
    expect(log.events).toHaveLength(1);
    expect(t.commands.names()).toEqual([
      'insert',
      'insert',
      'commitTransaction',
      'insert',
      'insert',
      'commitTransaction',
    ]);
    expect(await coll.find({}).toArray()).toEqual([{ _id: 'taken' }]);
  });

  it("the callback's next command says NoSuchTransaction twice in a row: same give-up", async () => {
    const name = await fresh('swallownext', [{ _id: 'taken', balance: 0 }]);
    const coll = collOf(t.client, name);
    const error = await rejectionOf(
      withRetryingTransaction(
        t.client,
        swallowing(coll, (session) =>
          coll.updateOne({ _id: 'taken' }, { $inc: { balance: 1 } }, { session }),
        ),
      ),
    );
    const giveUp = error as RetryBudgetExhaustedError;
    expect(giveUp.reason).toBe(GiveUpReason.AbortedBeforeCommit);
    expect(giveUp.attempts).toBe(2);
    expect((giveUp.cause as MongoServerError).code).toBe(251);
    expect(await coll.find({}).toArray()).toEqual([{ _id: 'taken', balance: 0 }]);
  });

  // The baseline: the driver's withTransaction re-runs the same callback until its 120 s
  // deadline (its timeoutMS option is deprecated and ignored in driver 6.x and 7.x). Waiting
  // two minutes is not worth it: the callback stops it on its 10th run, which shows that the
  // driver itself never would have.
  it('naive: session.withTransaction re-runs the swallowing callback again and again', async () => {
    const name = await fresh('swallowbase', [{ _id: 'taken' }]);
    const coll = collOf(t.client, name);
    const stop = new Error('stopped by the test');
    let runs = 0;
    const session = t.client.startSession();
    try {
      const error = await rejectionOf(
        session.withTransaction(async (s) => {
          runs += 1;
          if (runs === 10) throw stop;
          return swallowing(coll)(s);
        }),
      );
      expect(error).toBe(stop);
    } finally {
      await session.endSession();
    }
    expect(runs).toBe(10);
  });
});

describe('standalone server', () => {
  let standalone: EmbeddedMongo;
  let client: MongoClient;

  beforeAll(async () => {
    standalone = await startStandalone(backendKind() === 'memory-server');
    client = new MongoClient(standalone.uri);
    await client.connect();
  });

  afterAll(async () => {
    await client?.db('ma_txn_standalone').dropDatabase();
    await client?.close();
    await standalone?.stop();
  });

  it('throws TransactionsUnsupportedError with the server refusal (IllegalOperation 20) as cause', async () => {
    const coll = client.db('ma_txn_standalone').collection<Account>('c');
    const log = retries();
    let runs = 0;
    const error = await rejectionOf(
      withRetryingTransaction(
        client,
        async (session) => {
          runs += 1;
          await coll.insertOne({ _id: 1 }, { session });
        },
        { onRetry: log.onRetry },
      ),
    );
    expect(error).toBeInstanceOf(TransactionsUnsupportedError);
    expect(isTransactionsUnsupportedError(error)).toBe(true);
    const cause = (error as TransactionsUnsupportedError).cause;
    expect(cause).toBeInstanceOf(Error);
    expect(isTransactionsUnsupported(cause)).toBe(true);
    expect(runs).toBe(1);
    expect(log.events).toEqual([]);
    expect(await coll.countDocuments()).toBe(0);
  });
});

describe('invalid arguments', () => {
  const ok = async () => 1;
  type Args = [unknown, unknown, unknown?];
  const cases: [string, () => Args, string][] = [
    ['client is not a client', () => [{}, ok], 'client'],
    ['client is missing', () => [undefined, ok], 'client'],
    ['fn is not a function', () => [t.client, 'insert'], 'fn'],
    ['options is not an object', () => [t.client, ok, 5], 'options'],
    ['options is null', () => [t.client, ok, null], 'options'],
    ['an unknown option (typo)', () => [t.client, ok, { timeout: 5 }], 'timeout'],
    ['timeoutMs is 0', () => [t.client, ok, { timeoutMs: 0 }], 'timeoutMs'],
    ['timeoutMs is negative', () => [t.client, ok, { timeoutMs: -1 }], 'timeoutMs'],
    ['timeoutMs is NaN', () => [t.client, ok, { timeoutMs: Number.NaN }], 'timeoutMs'],
    ['timeoutMs is Infinity', () => [t.client, ok, { timeoutMs: Infinity }], 'timeoutMs'],
    ['timeoutMs overflows setTimeout', () => [t.client, ok, { timeoutMs: 2 ** 31 }], 'timeoutMs'],
    ['timeoutMs is a string', () => [t.client, ok, { timeoutMs: '100' }], 'timeoutMs'],
    ['maxAttempts is 0', () => [t.client, ok, { maxAttempts: 0 }], 'maxAttempts'],
    ['maxAttempts is 1.5', () => [t.client, ok, { maxAttempts: 1.5 }], 'maxAttempts'],
    ['maxAttempts is NaN', () => [t.client, ok, { maxAttempts: Number.NaN }], 'maxAttempts'],
    ['backoff is not an object', () => [t.client, ok, { backoff: 'fast' }], 'backoff'],
    [
      'backoff.initialDelayMs is negative',
      () => [t.client, ok, { backoff: { initialDelayMs: -1 } }],
      'backoff.initialDelayMs',
    ],
    [
      'backoff.factor is below 1',
      () => [t.client, ok, { backoff: { factor: 0.5 } }],
      'backoff.factor',
    ],
    [
      'backoff.maxDelayMs is NaN',
      () => [t.client, ok, { backoff: { maxDelayMs: Number.NaN } }],
      'backoff.maxDelayMs',
    ],
    [
      'backoff.jitter is unknown',
      () => [t.client, ok, { backoff: { jitter: 'half' } }],
      'backoff.jitter',
    ],
    [
      'backoff has an unknown key',
      () => [t.client, ok, { backoff: { delay: 5 } }],
      'backoff.delay',
    ],
    ['onRetry is not a function', () => [t.client, ok, { onRetry: 'log' }], 'onRetry'],
    ['signal is not an AbortSignal', () => [t.client, ok, { signal: {} }], 'signal'],
    [
      'signal is an AbortController',
      () => [t.client, ok, { signal: new AbortController() }],
      'signal',
    ],
    ['a session is passed', () => [t.client, ok, { session: {} }], 'session'],
    [
      'transactionOptions is not an object',
      () => [t.client, ok, { transactionOptions: 'snapshot' }],
      'transactionOptions',
    ],
    [
      'transactionOptions has an unknown key',
      () => [t.client, ok, { transactionOptions: { timeoutMS: 5 } }],
      'transactionOptions.timeoutMS',
    ],
    [
      'transactionOptions.readPreference is not primary',
      () => [t.client, ok, { transactionOptions: { readPreference: 'secondary' } }],
      'transactionOptions.readPreference',
    ],
    [
      'transactionOptions.readConcern is a number',
      () => [t.client, ok, { transactionOptions: { readConcern: 5 } }],
      'transactionOptions.readConcern',
    ],
    [
      'transactionOptions.maxCommitTimeMS is 0',
      () => [t.client, ok, { transactionOptions: { maxCommitTimeMS: 0 } }],
      'transactionOptions.maxCommitTimeMS',
    ],
  ];

  it.each(cases)(
    '%s: InvalidArgumentError naming it, no command sent',
    async (_label, args, option) => {
      const [client, fn, options] = args();
      t.commands.reset();
      const error = await rejectionOf(
        withRetryingTransaction(
          client as MongoClient,
          fn as () => Promise<unknown>,
          options as WithRetryingTransactionOptions,
        ),
      );
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).option).toBe(option);
      expect((error as InvalidArgumentError).primitive).toBe('withRetryingTransaction');
      expect(t.commands.names()).toEqual([]);
    },
  );

  it('maxAttempts: Infinity is accepted (only the time budget then)', async () => {
    expect(await withRetryingTransaction(t.client, ok, { maxAttempts: Infinity })).toBe(1);
  });
});

describe('race: 20 concurrent read-then-write deposits on one account', () => {
  const WORKERS = 20;
  // One single-connection client per caller, so requests really interleave at the server.
  const clients = useRaceClients(WORKERS).all;

  it('naive: without a transaction, every deposit reads 0 before any writes, and 19 of the 20 deposits are lost', async () => {
    const name = await fresh('naive', [{ _id: 'acct', balance: 0 }]);
    const allRead = barrier(WORKERS);
    await Promise.all(
      clients.map(async (client) => {
        const coll = collOf(client, name);
        const account = await coll.findOne({ _id: 'acct' });
        await allRead();
        await coll.updateOne({ _id: 'acct' }, { $set: { balance: (account?.balance ?? 0) + 10 } });
      }),
    );
    expect(await t.db.collection<Account>(name).findOne({ _id: 'acct' })).toEqual({
      _id: 'acct',
      balance: 10,
    });
  });

  it('withRetryingTransaction, same interleaving: all 20 succeed and the balance is exactly +200', async () => {
    const name = await fresh('txn', [{ _id: 'acct', balance: 0 }]);
    const allRead = barrier(WORKERS);
    const events: TransactionRetryEvent[] = [];
    const runs = await Promise.all(
      clients.map((client) =>
        withRetryingTransaction(
          client,
          async (session, { attempt }: TransactionAttempt) => {
            const coll = collOf(client, name);
            const account = await coll.findOne({ _id: 'acct' }, { session });
            // First attempts: every read before any write, as in the naive run.
            if (attempt === 1) await allRead();
            await coll.updateOne(
              { _id: 'acct' },
              { $set: { balance: (account?.balance ?? 0) + 10 } },
              { session },
            );
            return attempt;
          },
          { onRetry: (event) => void events.push(event) },
        ),
      ),
    );
    expect(await t.db.collection<Account>(name).findOne({ _id: 'acct' })).toEqual({
      _id: 'acct',
      balance: 200,
    });
    // Only one first attempt could win; the others lost to a WriteConflict and retried.
    expect(runs.filter((attempt) => attempt === 1)).toHaveLength(1);
    expect(events.length).toBeGreaterThanOrEqual(WORKERS - 1);
    for (const event of events) {
      expect(event.reason).toBe(TransactionRetryReason.TransientTransactionError);
      expect((event.error as MongoServerError).code).toBe(112);
    }
  });
});
