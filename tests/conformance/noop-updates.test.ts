/**
 * Updates whose result is byte-identical to the stored document are no-ops: nothing written.
 *
 * Sources: MongoDB manual, reference/command/update ("nModified: the number of documents
 * updated. If the update operation results in no change to the document, such as setting the
 * value of the field to its current value, nModified can be less than n"); server
 * src/mongo/db/update/pipeline_executor.cpp and object_replace_executor.cpp ("Check for noop":
 * `originalDoc.binaryEqual(replacementDoc)` → `ApplyResult::noopResult()`, a BYTE comparison,
 * so the same fields in another order are a change); src/mongo/db/exec/update_stage.cpp and
 * src/mongo/db/exec/express/plan_executor_express.cpp (`if (!docWasModified) return
 * oldObj.value();` before any WriteUnitOfWork: no storage write, hence no oplog entry and no
 * write for another transaction to conflict with, "first updater wins" needing a write);
 * SERVER-10037 (no-op replacements are not written to oplog, journal or disk).
 */
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, withSession } from './helpers.js';

const t = useTestDatabase('noop_updates');

async function fresh(prefix: string, docs: Doc[]) {
  const name = t.uniqueName(prefix);
  await t.db.createCollection(name);
  const coll = t.db.collection<Doc>(name);
  await coll.insertMany(docs);
  return coll;
}

/** A pipeline that writes `n - 1` when `n >= 1`, else puts the document back as it is. */
const guardedTake = [
  {
    $replaceWith: {
      $cond: [
        { $gte: ['$n', 1] },
        { $mergeObjects: ['$$ROOT', { n: { $add: ['$n', -1] } }] },
        '$$ROOT',
      ],
    },
  },
];

/**
 * The same guard as a `$set` of the one field, set to its own value when the guard fails
 * (guardedDecrement's form). `$set` is `$addFields` (manual, aggregation/set: "If the name of
 * the new field is the same as an existing field name, $set overwrites the existing value of
 * that field", in its place); a field path that is missing evaluates to missing, and a field
 * set to missing is not output (manual, aggregation expressions, "Field paths": a missing
 * field has no value; $addFields "excludes" a field whose expression is $$REMOVE or missing),
 * so a document without the field comes out byte for byte as it went in.
 */
const guardedSet = [{ $set: { n: { $cond: [{ $gte: ['$n', 1] }, { $add: ['$n', -1] }, '$n'] } } }];

describe('a pipeline update that yields the document unchanged', () => {
  it('a $set of a field to its own value is a no-op: nModified 0, type and field order kept', async () => {
    const coll = await fresh('set-same', [{ _id: 1, tag: 'a', n: 0, sub: { x: 1 } }]);
    const result = await coll.updateOne({ _id: 1 }, guardedSet);
    expect(result.matchedCount).toBe(1);
    expect(result.modifiedCount).toBe(0);
    const stored = await coll.findOne({ _id: 1 });
    expect(stored).toEqual({ _id: 1, tag: 'a', n: 0, sub: { x: 1 } });
    expect(Object.keys(stored ?? {})).toEqual(['_id', 'tag', 'n', 'sub']);
    const taken = await coll.updateOne({ _id: 1 }, [{ $set: { n: 3 } }]);
    expect(taken.modifiedCount).toBe(1);
    expect((await coll.updateOne({ _id: 1 }, guardedSet)).modifiedCount).toBe(1);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, tag: 'a', n: 2, sub: { x: 1 } });
  });

  it('a $set of a missing field to its own (missing) value adds nothing: nModified 0, no null field', async () => {
    const coll = await fresh('set-missing', [{ _id: 1, tag: 'a' }]);
    const result = await coll.updateOne({ _id: 1 }, guardedSet);
    expect(result.matchedCount).toBe(1);
    expect(result.modifiedCount).toBe(0);
    const stored = await coll.findOne({ _id: 1 });
    expect(stored).toEqual({ _id: 1, tag: 'a' });
    expect(Object.hasOwn(stored ?? {}, 'n')).toBe(false);
  });

  it('matches, modifies nothing (nModified 0), and the document stays as stored', async () => {
    const coll = await fresh('same', [{ _id: 1, n: 0, tag: 'a', sub: { x: 1 } }]);
    const result = await coll.updateOne({ _id: 1 }, guardedTake);
    expect(result.matchedCount).toBe(1);
    expect(result.modifiedCount).toBe(0);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 0, tag: 'a', sub: { x: 1 } });
    const applied = await coll.updateOne({ _id: 1 }, [{ $set: { n: 5 } }]);
    expect(applied.modifiedCount).toBe(1);
  });

  it('the comparison is of bytes: the same fields in another order are a modification', async () => {
    const coll = await fresh('bytes', [{ _id: 1, n: 3, tag: 'a' }]);
    const result = await coll.updateOne({ _id: 1 }, [
      { $replaceWith: { _id: '$_id', tag: '$tag', n: '$n' } },
    ]);
    expect(result.modifiedCount).toBe(1);
    const stored = await coll.findOne({ _id: 1 });
    expect(Object.keys(stored ?? {})).toEqual(['_id', 'tag', 'n']);
  });

  it('findAndModify returns the before-image through an expression projection, with lastErrorObject n 1', async () => {
    const coll = await fresh('fam', [{ _id: 1, n: 0 }]);
    const reply = await coll.findOneAndUpdate({ _id: 1 }, guardedTake, {
      returnDocument: 'before',
      projection: { _id: 0, ok: { $gte: ['$n', 1] }, n: 1 },
      includeResultMetadata: true,
    });
    expect(reply.value).toEqual({ n: 0, ok: false });
    expect(reply.lastErrorObject).toMatchObject({ n: 1, updatedExisting: true });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 0 });
  });
});

describe('a no-op update in a transaction writes nothing another transaction conflicts with', () => {
  it.each([
    ['$replaceWith', guardedTake],
    ['$set', guardedSet],
  ])(
    'a later transaction updates the document and commits; then the first commits too (the %s form)',
    async (form, pipeline) => {
      const coll = await fresh(`txn-first-${form.slice(1)}`, [{ _id: 1, n: 0, tag: 'a' }]);
      await withSession(t.client, async (first) => {
        await withSession(t.client, async (second) => {
          first.startTransaction();
          const noop = await coll.findOneAndUpdate({ _id: 1 }, pipeline, {
            session: first,
            returnDocument: 'before',
            includeResultMetadata: true,
          });
          expect(noop.value).toEqual({ _id: 1, n: 0, tag: 'a' });
          expect(noop.lastErrorObject).toMatchObject({ n: 1, updatedExisting: true });
          second.startTransaction();
          // A real write by `first` would make this a WriteConflict (first updater wins).
          await coll.updateOne({ _id: 1 }, { $set: { tag: 'b' } }, { session: second });
          await second.commitTransaction();
          await first.commitTransaction();
        });
      });
      expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 0, tag: 'b' });
    },
  );

  it('after another transaction wrote the document, a no-op update in a second one does not conflict', async () => {
    const coll = await fresh('txn-second', [{ _id: 1, n: 0, tag: 'a' }]);
    await withSession(t.client, async (writer) => {
      await withSession(t.client, async (other) => {
        writer.startTransaction();
        await coll.updateOne({ _id: 1 }, { $set: { tag: 'b' } }, { session: writer });
        other.startTransaction();
        const result = await coll.updateOne({ _id: 1 }, guardedTake, { session: other });
        expect(result.modifiedCount).toBe(0);
        await writer.commitTransaction();
        await other.commitTransaction();
      });
    });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 0, tag: 'b' });
  });
});
