/**
 * Leases with fencing tokens: outcomes and round trips of acquireLease / renewLease /
 * releaseLease, validation that sends nothing, N concurrent acquirers (the naive
 * read-then-write lock first, under the same barrier), takeover after a crash, client clocks
 * that never matter, and fencedUpdate refusing a paused holder's late write.
 */
import type { Collection, Document } from 'mongodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isInvalidArgumentError } from '../src/errors.js';
import {
  acquireLease,
  fencedUpdate,
  type LeaseDocument,
  releaseLease,
  renewLease,
} from '../src/lease.js';
import { sleep } from './support/async.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, race, useRaceClients } from './support/race.js';

const t = useTestDatabase('lease');
const WORKERS = 20;
const clients = useRaceClients(WORKERS);
const LONG = 60_000;

function leases(): Collection<LeaseDocument> {
  const coll = t.db.collection<LeaseDocument>(t.uniqueName('leases'));
  t.commands.reset();
  return coll;
}

/** Ends the lease `name` now by the server's clock, as time passing would. */
async function expireNow(coll: Collection<LeaseDocument>, name: string): Promise<void> {
  await coll.updateOne({ _id: name }, [{ $set: { expiresAt: '$$NOW' } }]);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('acquireLease, renewLease, releaseLease: outcomes and round trips', () => {
  it('acquires a new name with token 1 and an expiry by the server clock, in one findAndModify', async () => {
    const coll = leases();
    const result = await acquireLease(coll, 'job', { holder: 'a', ttlMs: LONG });
    expect(result).toEqual({ outcome: 'acquired', token: 1, expiresAt: expect.any(Date) });
    expect(t.commands.names()).toEqual(['findAndModify']);
    const doc = await coll.findOne({ _id: 'job' });
    expect(doc).toMatchObject({ holder: 'a', token: 1, takenOverFrom: null });
    expect(doc?.expiresAt).toEqual(result.expiresAt);
  });

  it('a live lease resolves held for everyone else, and for its own holder label too (not reentrant); nothing changes', async () => {
    const coll = leases();
    const first = await acquireLease(coll, 'job', { holder: 'a', ttlMs: LONG });
    const before = await coll.findOne({ _id: 'job' });
    t.commands.reset();
    expect(await acquireLease(coll, 'job', { holder: 'b', ttlMs: LONG })).toEqual({
      outcome: 'held',
      holder: 'a',
      expiresAt: first.expiresAt,
    });
    expect(await acquireLease(coll, 'job', { holder: 'a', ttlMs: LONG })).toEqual({
      outcome: 'held',
      holder: 'a',
      expiresAt: first.expiresAt,
    });
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify']);
    expect(await coll.findOne({ _id: 'job' })).toEqual(before);
  });

  it('release frees the lease in one update and keeps the token: the next acquirer gets token 2, no previousHolder', async () => {
    const coll = leases();
    const first = await acquireLease(coll, 'job', { holder: 'a', ttlMs: LONG });
    t.commands.reset();
    expect(await releaseLease(coll, 'job', { token: first.token as number })).toEqual({
      outcome: 'released',
    });
    expect(t.commands.names()).toEqual(['update']);
    expect(await coll.findOne({ _id: 'job' })).toMatchObject({
      holder: null,
      expiresAt: null,
      token: 1,
    });
    t.commands.reset();
    expect(await releaseLease(coll, 'job', { token: 1 })).toEqual({ outcome: 'notHeld' });
    expect(t.commands.names()).toEqual(['update']);
    expect(await acquireLease(coll, 'job', { holder: 'b', ttlMs: LONG })).toEqual({
      outcome: 'acquired',
      token: 2,
      expiresAt: expect.any(Date),
    });
  });

  it('a release with a stale token never frees the successor’s lease', async () => {
    const coll = leases();
    await acquireLease(coll, 'job', { holder: 'a', ttlMs: LONG });
    await expireNow(coll, 'job');
    const second = await acquireLease(coll, 'job', { holder: 'b', ttlMs: LONG });
    expect(second).toMatchObject({ outcome: 'acquired', token: 2, previousHolder: 'a' });
    expect(await releaseLease(coll, 'job', { token: 1 })).toEqual({ outcome: 'notHeld' });
    expect(await coll.findOne({ _id: 'job' })).toMatchObject({ holder: 'b', token: 2 });
  });

  it('renew extends a live lease by the server clock in one findAndModify', async () => {
    const coll = leases();
    const first = await acquireLease(coll, 'job', { holder: 'a', ttlMs: 1000 });
    t.commands.reset();
    const renewed = await renewLease(coll, 'job', { token: 1, ttlMs: LONG });
    expect(renewed).toEqual({ outcome: 'renewed', expiresAt: expect.any(Date) });
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(renewed.expiresAt?.getTime()).toBeGreaterThan((first.expiresAt as Date).getTime());
    expect((await coll.findOne({ _id: 'job' }))?.expiresAt).toEqual(renewed.expiresAt);
  });

  it('renew says why a lease is lost, in one command, and never revives it', async () => {
    const coll = leases();
    await acquireLease(coll, 'job', { holder: 'a', ttlMs: LONG });
    await expireNow(coll, 'job');
    t.commands.reset();
    expect(await renewLease(coll, 'job', { token: 1, ttlMs: LONG })).toEqual({
      outcome: 'lost',
      reason: 'expired',
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
    // Still free: the failed renewal did not extend it.
    expect(await acquireLease(coll, 'job', { holder: 'b', ttlMs: LONG })).toMatchObject({
      outcome: 'acquired',
      token: 2,
      previousHolder: 'a',
    });
    expect(await renewLease(coll, 'job', { token: 1, ttlMs: LONG })).toEqual({
      outcome: 'lost',
      reason: 'superseded',
    });
    expect(await releaseLease(coll, 'job', { token: 2 })).toEqual({ outcome: 'released' });
    expect(await renewLease(coll, 'job', { token: 2, ttlMs: LONG })).toEqual({
      outcome: 'lost',
      reason: 'released',
    });
    expect(await renewLease(coll, 'nobody', { token: 1, ttlMs: LONG })).toEqual({
      outcome: 'lost',
      reason: 'released',
    });
    expect(await coll.findOne({ _id: 'job' })).toMatchObject({ holder: null, expiresAt: null });
  });

  it('an expired lease that nobody took over is still released by its token', async () => {
    const coll = leases();
    await acquireLease(coll, 'job', { holder: 'a', ttlMs: LONG });
    await expireNow(coll, 'job');
    expect(await releaseLease(coll, 'job', { token: 1 })).toEqual({ outcome: 'released' });
    // Released, not taken over: the next acquirer reports no previous holder.
    expect(await acquireLease(coll, 'job', { holder: 'b', ttlMs: LONG })).toEqual({
      outcome: 'acquired',
      token: 2,
      expiresAt: expect.any(Date),
    });
  });

  it('holder crash: a holder that stops renewing loses the lease once its ttl has passed by the server clock, and the taker learns who it was', async () => {
    const coll = leases();
    // A 1 ms lease, never renewed: by the time the next request reaches the server it has
    // ended by the server's clock (a live lease resolving held is tested above).
    expect(await acquireLease(coll, 'job', { holder: 'crashed', ttlMs: 1 })).toMatchObject({
      outcome: 'acquired',
      token: 1,
    });
    await sleep(5);
    expect(await acquireLease(coll, 'job', { holder: 'b', ttlMs: LONG })).toEqual({
      outcome: 'acquired',
      token: 2,
      expiresAt: expect.any(Date),
      previousHolder: 'crashed',
    });
  });

  it('tokens increase by one per acquisition across takeovers and releases, never reused', async () => {
    const coll = leases();
    const tokens: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const got = await acquireLease(coll, 'job', { holder: `h${i}`, ttlMs: LONG });
      tokens.push(got.token as number);
      if (i % 2 === 0) await releaseLease(coll, 'job', { token: got.token as number });
      else await expireNow(coll, 'job');
    }
    expect(tokens).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('names are independent: each has its own holder and tokens', async () => {
    const coll = leases();
    expect(await acquireLease(coll, 'x', { holder: 'a', ttlMs: LONG })).toMatchObject({ token: 1 });
    expect(await acquireLease(coll, 'y', { holder: 'b', ttlMs: LONG })).toMatchObject({ token: 1 });
  });
});

describe('the client clock is never used', () => {
  function dates(value: unknown, found: string[], at = ''): string[] {
    if (value instanceof Date) found.push(at);
    else if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) dates(item, found, `${at}.${i}`);
    } else if (typeof value === 'object' && value !== null && value.constructor === Object) {
      for (const [key, inner] of Object.entries(value)) dates(inner, found, `${at}.${key}`);
    }
    return found;
  }

  it('no command of acquire, renew, release or fencedUpdate carries a Date or an ObjectId (which embeds client time)', async () => {
    const coll = leases();
    const got = await acquireLease(coll, 'job', { holder: 'a', ttlMs: LONG });
    await renewLease(coll, 'job', { token: got.token as number, ttlMs: LONG });
    await fencedUpdate(t.db.collection<{ _id: string }>(t.uniqueName('data')), {
      filter: { _id: 'd' },
      update: { $set: { x: 1 } },
      token: 1,
    });
    await releaseLease(coll, 'job', { token: got.token as number });
    const sent = t.commands.started.map((event) => event.command as Document);
    expect(sent.map((command) => Object.keys(command)[0])).toEqual([
      'findAndModify',
      'findAndModify',
      'update',
      'find',
      'update',
    ]);
    for (const command of sent) {
      const { lsid: _l, $clusterTime: _c, ...body } = command;
      expect(dates(body, [])).toEqual([]);
      expect(JSON.stringify(body)).not.toMatch(/\$oid/);
    }
  });

  it('a client whose Date.now runs a day ahead or behind behaves exactly as one on time', async () => {
    const coll = leases();
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 86_400_000);
    const ahead = await acquireLease(coll, 'job', { holder: 'ahead', ttlMs: LONG });
    expect(ahead).toMatchObject({ outcome: 'acquired', token: 1 });
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 86_400_000);
    // Behind: it does not take the live lease, and cannot renew someone else's.
    expect(await acquireLease(coll, 'job', { holder: 'behind', ttlMs: LONG })).toMatchObject({
      outcome: 'held',
      holder: 'ahead',
    });
    expect(await renewLease(coll, 'job', { token: 1, ttlMs: LONG })).toMatchObject({
      outcome: 'renewed',
    });
    // The expiry is the server's: ttlMs from the server's now (the test server runs on this
    // machine, so the real clock stands in for it), whatever the clients' Date.now says.
    const doc = await coll.findOne({ _id: 'job' });
    const left = (doc?.expiresAt ?? new Date(0)).getTime() - realNow();
    expect(left).toBeGreaterThan(LONG - 5_000);
    expect(left).toBeLessThanOrEqual(LONG + 5_000);
  });

  it('the naive lock that compares expiresAt with the client clock lets a client an hour ahead take a live lease', async () => {
    const coll = leases();
    await naiveAcquire(coll, 'job', 'on-time', LONG);
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
    expect(await naiveAcquire(coll, 'job', 'ahead', LONG)).toBe(true); // stole a live lease
    vi.restoreAllMocks();
    const coll2 = leases();
    await acquireLease(coll2, 'job', { holder: 'on-time', ttlMs: LONG });
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
    expect(await acquireLease(coll2, 'job', { holder: 'ahead', ttlMs: LONG })).toMatchObject({
      outcome: 'held',
    });
  });
});

/**
 * The naive lock: read the lock document, decide "free" with the client's clock, write. Between
 * the read and the write (`afterRead`) another client may do the same.
 */
async function naiveAcquire(
  coll: Collection<LeaseDocument>,
  name: string,
  holder: string,
  ttlMs: number,
  afterRead: () => Promise<void> = async () => {},
): Promise<boolean> {
  const doc = await coll.findOne({ _id: name });
  const now = Date.now();
  const free = doc === null || doc.expiresAt === null || doc.expiresAt.getTime() <= now;
  await afterRead();
  if (!free) return false;
  await coll.updateOne(
    { _id: name },
    {
      $set: { holder, expiresAt: new Date(now + ttlMs) },
      $inc: { token: 1 },
    },
    { upsert: true },
  );
  return true;
}

/** `coll` through race client `index`'s own connection. */
function collOn(index: number, coll: Collection<LeaseDocument>): Collection<LeaseDocument> {
  const client = clients.all[index];
  if (client === undefined) throw new Error(`no race client ${index}`);
  return client.db(t.db.databaseName).collection<LeaseDocument>(coll.collectionName);
}

describe(`${WORKERS} concurrent acquirers of one name`, () => {
  it('the naive read-then-write lock hands the lease to several of them (every read before any write)', async () => {
    const coll = leases();
    const allRead = barrier(WORKERS);
    const report = await race(WORKERS, (index) =>
      naiveAcquire(collOn(index, coll), 'job', `w${index}`, LONG, allRead),
    );
    const winners = report.values.filter((won) => won === true).length;
    expect(winners).toBeGreaterThan(1);
  });

  it('acquireLease: exactly one acquires (token 1), the others see it held by the winner', async () => {
    const coll = leases();
    const report = await race(WORKERS, (index) =>
      acquireLease(collOn(index, coll), 'job', { holder: `w${index}`, ttlMs: LONG }),
    );
    const results = report.values;
    const won = results.filter((r) => r.outcome === 'acquired');
    expect(won).toHaveLength(1);
    expect(won[0]?.token).toBe(1);
    const winner = (await coll.findOne({ _id: 'job' }))?.holder;
    for (const r of results) if (r.outcome === 'held') expect(r.holder).toBe(winner);
  });

  it('after an expiry, of N racing takers exactly one gets the next token and reports the previous holder', async () => {
    const coll = leases();
    await acquireLease(coll, 'job', { holder: 'old', ttlMs: LONG });
    await expireNow(coll, 'job');
    const report = await race(WORKERS, (index) =>
      acquireLease(collOn(index, coll), 'job', { holder: `w${index}`, ttlMs: LONG }),
    );
    const results = report.values;
    const won = results.filter((r) => r.outcome === 'acquired');
    expect(won).toHaveLength(1);
    expect(won[0]).toMatchObject({ token: 2, previousHolder: 'old' });
  });

  it('renewals under load: a holder renewing while every other client keeps trying to acquire never loses, and nobody else acquires', async () => {
    const coll = leases();
    const held = await acquireLease(coll, 'job', { holder: 'holder', ttlMs: LONG });
    const token = held.token as number;
    const collOf = (index: number) => collOn(index, coll);
    const ROUNDS = 8;
    const outcomes: string[] = [];
    let renewals = 0;
    await race(WORKERS, async (index) => {
      for (let round = 0; round < ROUNDS; round += 1) {
        if (index === 0) {
          const r = await renewLease(collOf(0), 'job', { token, ttlMs: LONG });
          outcomes.push(r.outcome);
          renewals += 1;
        } else {
          const r = await acquireLease(collOf(index), 'job', { holder: `w${index}`, ttlMs: LONG });
          outcomes.push(r.outcome);
        }
      }
    });
    expect(renewals).toBe(ROUNDS);
    expect(outcomes.filter((o) => o === 'renewed')).toHaveLength(ROUNDS);
    expect(outcomes.filter((o) => o === 'acquired' || o === 'lost')).toEqual([]);
    expect(await coll.findOne({ _id: 'job' })).toMatchObject({ holder: 'holder', token: 1 });
  });
});

describe('fencing: a paused holder’s late write', () => {
  interface Report {
    _id: string;
    writtenBy?: string;
    _fence?: number;
  }

  it('without a fence, the holder paused past its lease overwrites its successor’s work', async () => {
    const coll = leases();
    const reports = t.db.collection<Report>(t.uniqueName('reports'));
    await reports.insertOne({ _id: 'r' });
    const a = await acquireLease(coll, 'job', { holder: 'a', ttlMs: 1 });
    expect(a.outcome).toBe('acquired');
    await sleep(5); // a pauses (GC, network) past its lease
    const b = await acquireLease(coll, 'job', { holder: 'b', ttlMs: LONG });
    expect(b).toMatchObject({ outcome: 'acquired', previousHolder: 'a' });
    await reports.updateOne({ _id: 'r' }, { $set: { writtenBy: 'b' } });
    await reports.updateOne({ _id: 'r' }, { $set: { writtenBy: 'a' } }); // a wakes up
    expect((await reports.findOne({ _id: 'r' }))?.writtenBy).toBe('a'); // b's work is lost
  });

  it('with fencedUpdate, the late write is refused (fenced, naming the newer token) and the successor’s work stays', async () => {
    const coll = leases();
    const reports = t.db.collection<Report>(t.uniqueName('reports'));
    await reports.insertOne({ _id: 'r' });
    const a = await acquireLease(coll, 'job', { holder: 'a', ttlMs: 1 });
    const aToken = a.token as number;
    expect(
      await fencedUpdate(reports, {
        filter: { _id: 'r' },
        update: { $set: { writtenBy: 'a-early' } },
        token: aToken,
      }),
    ).toEqual({ outcome: 'applied' });
    await sleep(5); // a pauses past its lease
    const b = await acquireLease(coll, 'job', { holder: 'b', ttlMs: LONG });
    const bToken = b.token as number;
    expect(bToken).toBeGreaterThan(aToken);
    t.commands.reset();
    expect(
      await fencedUpdate(reports, {
        filter: { _id: 'r' },
        update: { $set: { writtenBy: 'b' } },
        token: bToken,
      }),
    ).toEqual({ outcome: 'applied' });
    expect(t.commands.names()).toEqual(['update']);
    t.commands.reset();
    expect(
      await fencedUpdate(reports, {
        filter: { _id: 'r' },
        update: { $set: { writtenBy: 'a' } },
        token: aToken,
      }),
    ).toEqual({ outcome: 'fenced', fence: bToken });
    expect(t.commands.names()).toEqual(['update', 'find']);
    expect(await reports.findOne({ _id: 'r' })).toEqual({
      _id: 'r',
      writtenBy: 'b',
      _fence: bToken,
    });
  });

  it('the same token writes again; a missing document is notFound; a custom fenceField; merges with the caller’s $set', async () => {
    const data = t.db.collection<{
      _id: string;
      n?: number;
      at?: number;
      meta?: { fence: number };
    }>(t.uniqueName('data'));
    await data.insertOne({ _id: 'd', n: 0 });
    const write = (token: number) =>
      fencedUpdate(data, {
        filter: { _id: 'd' },
        update: { $set: { at: token }, $inc: { n: 1 } },
        token,
        fenceField: 'meta.fence',
      });
    expect(await write(3)).toEqual({ outcome: 'applied' });
    expect(await write(3)).toEqual({ outcome: 'applied' });
    expect(await write(2)).toEqual({ outcome: 'fenced', fence: 3 });
    expect(await data.findOne({ _id: 'd' })).toEqual({ _id: 'd', n: 2, at: 3, meta: { fence: 3 } });
    t.commands.reset();
    expect(
      await fencedUpdate(data, { filter: { _id: 'none' }, update: { $set: { x: 1 } }, token: 9 }),
    ).toEqual({ outcome: 'notFound' });
    expect(t.commands.names()).toEqual(['update', 'find']);
  });
});

describe('validation: a typed error naming the option, and nothing sent', () => {
  const coll = () => t.db.collection<LeaseDocument>('never_written');
  const cases: [string, string, () => Promise<unknown>][] = [
    ['acquireLease', 'name', () => acquireLease(coll(), '', { holder: 'a', ttlMs: 1 })],
    [
      'acquireLease',
      'name',
      () => acquireLease(coll(), 42 as unknown as string, { holder: 'a', ttlMs: 1 }),
    ],
    ['acquireLease', 'holder', () => acquireLease(coll(), 'n', { holder: '', ttlMs: 1 })],
    ['acquireLease', 'ttlMs', () => acquireLease(coll(), 'n', { holder: 'a', ttlMs: 0 })],
    ['acquireLease', 'ttlMs', () => acquireLease(coll(), 'n', { holder: 'a', ttlMs: 1.5 })],
    ['acquireLease', 'ttlMs', () => acquireLease(coll(), 'n', { holder: 'a', ttlMs: 2 ** 31 })],
    [
      'acquireLease',
      'ttl',
      () => acquireLease(coll(), 'n', { holder: 'a', ttlMs: 1, ttl: 5 } as never),
    ],
    ['acquireLease', 'options', () => acquireLease(coll(), 'n', null as never)],
    ['acquireLease', 'collection', () => acquireLease({} as never, 'n', { holder: 'a', ttlMs: 1 })],
    ['renewLease', 'token', () => renewLease(coll(), 'n', { token: 0, ttlMs: 1 })],
    ['renewLease', 'token', () => renewLease(coll(), 'n', { token: '1' as never, ttlMs: 1 })],
    ['renewLease', 'ttlMs', () => renewLease(coll(), 'n', { token: 1, ttlMs: -1 })],
    ['releaseLease', 'token', () => releaseLease(coll(), 'n', { token: Number.NaN })],
    ['releaseLease', 'name', () => releaseLease(coll(), 'x'.repeat(1025), { token: 1 })],
    [
      'fencedUpdate',
      'update',
      () => fencedUpdate(coll(), { filter: { _id: 'n' }, update: { x: 1 } as never, token: 1 }),
    ],
    [
      'fencedUpdate',
      'update',
      () =>
        fencedUpdate(coll(), {
          filter: { _id: 'n' },
          update: [{ $set: { x: 1 } }] as never,
          token: 1,
        }),
    ],
    [
      'fencedUpdate',
      'update',
      () =>
        fencedUpdate(coll(), {
          filter: { _id: 'n' },
          update: { $set: { _fence: 9 } } as never,
          token: 1,
        }),
    ],
    [
      'fencedUpdate',
      'update',
      () =>
        fencedUpdate(coll(), {
          filter: { _id: 'n' },
          update: { $set: { '__proto__.x': 1 } } as never,
          token: 1,
        }),
    ],
    // A value the driver would silently drop (a function, a Symbol) is no BSON value.
    [
      'fencedUpdate',
      'update',
      () =>
        fencedUpdate(coll(), {
          filter: { _id: 'n' },
          update: { $set: { x: { y: () => 1 } } } as never,
          token: 1,
        }),
    ],
    [
      'fencedUpdate',
      'update',
      () =>
        fencedUpdate(coll(), {
          filter: { _id: 'n' },
          update: { $set: { x: [Symbol('s')] } } as never,
          token: 1,
        }),
    ],
    [
      'fencedUpdate',
      'fenceField',
      () =>
        fencedUpdate(coll(), {
          filter: { _id: 'n' },
          update: { $set: { x: 1 } },
          token: 1,
          fenceField: 'constructor',
        }),
    ],
    [
      'fencedUpdate',
      'fenceField',
      () =>
        fencedUpdate(coll(), {
          filter: { _id: 'n' },
          update: { $set: { x: 1 } },
          token: 1,
          fenceField: '_id',
        }),
    ],
    [
      'fencedUpdate',
      'token',
      () => fencedUpdate(coll(), { filter: { _id: 'n' }, update: { $set: { x: 1 } }, token: 0.5 }),
    ],
  ];

  it.each(cases)('%s refuses a bad %s', async (primitive, option, call) => {
    t.commands.reset();
    const error = await call().catch((e: unknown) => e);
    expect(isInvalidArgumentError(error), String(error)).toBe(true);
    expect(error).toMatchObject({ primitive, option });
    expect(t.commands.started).toEqual([]);
  });
});
