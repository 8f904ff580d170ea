/**
 * Cursors: batching, getMore, killCursors, cursor id types.
 *
 * Sources: MongoDB manual, reference/method/cursor.batchSize ("the initial batch size is the
 * lesser of 101 documents or 16 MiB; subsequent batches have a maximum size of 16 MiB"),
 * reference/command/find (batchSize, limit, singleBatch), reference/command/getMore,
 * reference/command/killCursors (cursorsKilled); mongodb/specifications
 * source/find_getmore_killcursors_commands/find_getmore_killcursors_commands.md (cursor id is an
 * int64, 0 when exhausted); server error_codes.yml (CursorNotFound = 43).
 */
import { type CommandSucceededEvent, type Document, Long } from 'mongodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('cursors');
const COUNT = 250;
const succeeded: CommandSucceededEvent[] = [];
let collName = '';

beforeAll(async () => {
  // Our own listener: the shared log only records commandStarted events.
  t.client.on('commandSucceeded', (event) => {
    if (['find', 'aggregate', 'getMore', 'killCursors'].includes(event.commandName)) {
      succeeded.push(event);
    }
  });
  collName = t.uniqueName('docs');
  await t.db
    .collection<Doc>(collName)
    .insertMany(Array.from({ length: COUNT }, (_, i) => ({ _id: i, v: `value-${i}` })));
});

const coll = () => t.db.collection<Doc>(collName);

function reset(): void {
  succeeded.length = 0;
  t.commands.reset();
}

function replies(name: string): Document[] {
  return succeeded
    .filter((event) => event.commandName === name)
    .map((event) => event.reply as Document);
}

function isZero(id: unknown): boolean {
  return String(id) === '0';
}

describe('find batching', () => {
  // cursor.batchSize / find docs: default first batch is 101 documents; the getMore after it
  // has no document-count default (only the 16 MiB limit), so 149 small documents come in one.
  it('default batch size: find returns 101 documents, one getMore returns the other 149', async () => {
    reset();
    const docs = await coll().find({}).sort({ _id: 1 }).toArray();
    expect(docs).toHaveLength(COUNT);
    expect(docs.map((doc) => doc._id)).toEqual(Array.from({ length: COUNT }, (_, i) => i));

    const started = t.commands.started.filter((e) => ['find', 'getMore'].includes(e.commandName));
    expect(started.map((e) => e.commandName)).toEqual(['find', 'getMore']);
    expect(started[0]?.command.batchSize).toBeUndefined();

    const [find] = replies('find');
    expect(find?.cursor.firstBatch).toHaveLength(101);
    expect(isZero(find?.cursor.id)).toBe(false);
    expect(find?.cursor.ns).toBe(`${t.db.databaseName}.${collName}`);
    const getMores = replies('getMore');
    expect(getMores).toHaveLength(1);
    expect(getMores[0]?.cursor.nextBatch).toHaveLength(COUNT - 101);
    expect(isZero(getMores[0]?.cursor.id)).toBe(true);
    expect(replies('killCursors')).toHaveLength(0);
  });

  // find/getMore: batchSize applies to the first batch and (sent by the driver) to each getMore.
  it('batchSize: 10 yields batches of at most 10 documents over about 24 getMores', async () => {
    reset();
    const docs = await coll().find({}, { batchSize: 10 }).sort({ _id: 1 }).toArray();
    expect(docs).toHaveLength(COUNT);
    const [find] = replies('find');
    expect(find?.cursor.firstBatch).toHaveLength(10);
    const batches = replies('getMore').map((reply) => reply.cursor.nextBatch.length as number);
    expect(batches.every((size) => size <= 10)).toBe(true);
    expect(10 + batches.reduce((sum, size) => sum + size, 0)).toBe(COUNT);
    // 240 documents after the first batch: 24 full getMores, plus possibly an empty last one.
    expect(batches.length).toBeGreaterThanOrEqual(24);
    expect(batches.length).toBeLessThanOrEqual(25);
    expect(batches.slice(0, 24).every((size) => size === 10)).toBe(true);
    const last = replies('getMore').at(-1);
    expect(isZero(last?.cursor.id)).toBe(true);
  });

  // find: limit caps the total across batches; batchSize still sizes each batch.
  it('limit with batchSize returns exactly limit documents in batches of at most batchSize', async () => {
    reset();
    const docs = await coll().find({}, { limit: 25, batchSize: 10 }).sort({ _id: 1 }).toArray();
    expect(docs.map((doc) => doc._id)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    const [find] = replies('find');
    expect(find?.cursor.firstBatch).toHaveLength(10);
    const rest = replies('getMore').map((reply) => reply.cursor.nextBatch.length as number);
    expect(rest.every((size) => size <= 10)).toBe(true);
    expect(rest.reduce((sum, size) => sum + size, 0)).toBe(15);
  });

  // find: singleBatch closes the cursor after the first batch (cursor id 0, no getMore).
  it('singleBatch returns one batch and closes the cursor', async () => {
    reset();
    const docs = await coll()
      .find({}, { batchSize: 20, singleBatch: true })
      .sort({ _id: 1 })
      .toArray();
    expect(docs).toHaveLength(20);
    const [find] = replies('find');
    expect(find?.cursor.firstBatch).toHaveLength(20);
    expect(isZero(find?.cursor.id)).toBe(true);
    expect(t.commands.names()).not.toContain('getMore');
    expect(t.commands.names()).not.toContain('killCursors');
  });

  // find: a negative limit means a single batch of at most |limit| documents.
  it('a negative limit returns a single batch and closes the cursor', async () => {
    reset();
    const docs = await coll().find({}).sort({ _id: 1 }).limit(-5).toArray();
    expect(docs.map((doc) => doc._id)).toEqual([0, 1, 2, 3, 4]);
    const [find] = replies('find');
    expect(isZero(find?.cursor.id)).toBe(true);
    expect(t.commands.names()).not.toContain('getMore');
  });
});

describe('killCursors', () => {
  // killCursors docs: closing an open cursor early sends killCursors; the reply lists the id
  // under cursorsKilled, and a later getMore on that id fails with CursorNotFound (43).
  it('closing a cursor early sends killCursors and the id is gone afterwards', async () => {
    reset();
    const cursor = coll().find({}, { batchSize: 10 });
    const first = await cursor.next();
    expect(first).not.toBeNull();
    const id = cursor.id;
    expect(id).toBeInstanceOf(Long);
    expect(id?.isZero()).toBe(false);
    await cursor.close();

    const kill = t.commands.started.find((e) => e.commandName === 'killCursors');
    expect(kill).toBeDefined();
    expect(kill?.command.killCursors).toBe(collName);
    expect(kill?.command.cursors.map(String)).toEqual([String(id)]);
    const [reply] = replies('killCursors');
    expect(reply?.cursorsKilled.map(String)).toEqual([String(id)]);

    const error = await serverError(t.db.command({ getMore: id, collection: collName }));
    expect(error.code).toBe(43);
    expect(error.codeName).toBe('CursorNotFound');
  });

  it('an exhausted cursor is not killed', async () => {
    reset();
    const cursor = coll().find({ _id: { $lt: 5 } });
    const docs = await cursor.toArray();
    expect(docs).toHaveLength(5);
    await cursor.close();
    expect(t.commands.names()).not.toContain('killCursors');
  });
});

describe('cursor ids', () => {
  // find/getMore spec: cursor.id is a BSON int64 — non-zero while open, 0 once exhausted.
  it('cursor ids are int64 (Long), non-zero while open and zero when exhausted', async () => {
    const open = await t.db.command({ find: collName, batchSize: 5 }, { promoteLongs: false });
    expect(open.cursor.id).toBeInstanceOf(Long);
    expect((open.cursor.id as Long).isZero()).toBe(false);
    expect(open.cursor.firstBatch).toHaveLength(5);

    const rest = await t.db.command(
      { getMore: open.cursor.id, collection: collName, batchSize: 1000 },
      { promoteLongs: false },
    );
    expect(rest.cursor.id).toBeInstanceOf(Long);
    expect((rest.cursor.id as Long).isZero()).toBe(true);
    expect(rest.cursor.nextBatch).toHaveLength(COUNT - 5);
    expect(rest.cursor.ns).toBe(`${t.db.databaseName}.${collName}`);

    const empty = await t.db.command(
      { find: collName, filter: { _id: -1 } },
      { promoteLongs: false },
    );
    expect(empty.cursor.id).toBeInstanceOf(Long);
    expect((empty.cursor.id as Long).isZero()).toBe(true);
    expect(empty.cursor.firstBatch).toEqual([]);
  });

  // cursor.batchSize docs: aggregate also has an initial batch of 101 documents by default.
  it('aggregate cursors follow the same first-batch default of 101', async () => {
    reset();
    const docs = await coll()
      .aggregate([{ $match: { _id: { $gte: 0 } } }, { $sort: { _id: 1 } }])
      .toArray();
    expect(docs).toHaveLength(COUNT);
    expect(t.commands.names().filter((name) => name === 'aggregate')).toHaveLength(1);
    const [aggregate] = replies('aggregate');
    expect(aggregate?.cursor.firstBatch).toHaveLength(101);
    expect(t.commands.names()).toContain('getMore');
  });
});
