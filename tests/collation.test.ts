/**
 * Collections with a default collation (issue 7, item 7). MongoDB compares strings with the
 * collection's default collation in every operation that does not name its own: the guards of
 * the primitives' updates AND the expressions of their failure-path reads
 * (https://www.mongodb.com/docs/manual/reference/collation/: "operations on that collection use
 * the collection's default collation"). The outcomes must agree with the guard the server
 * applied: under a case-insensitive collation, an opId `req-1` after `REQ-1` is a repeat, and a
 * claim of `paid` on a document in state `PAID` is already claimed.
 *
 * The offline server has no collation (its README says so), so these tests run against a stub
 * that answers as mongod does for a collection created with `{ locale: 'en', strength: 2 }`,
 * evaluating filters and projections with the offline server's evaluator on case-folded
 * copies (see tests/support/case-insensitive.ts). With a binary comparison on the client, every
 * test here fails.
 */
import type { Collection, Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { applyProgress } from '../src/apply-progress.js';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../src/capacity-set.js';
import { claimOnce } from '../src/claim-once.js';
import { isMongoAtomicsError } from '../src/errors.js';
import { guardedDecrement } from '../src/guarded-decrement.js';
import { updateWithVersion } from '../src/update-with-version.js';
import { caseInsensitiveCollection } from './support/case-insensitive.js';

describe('under a case-insensitive default collation, outcomes agree with the server', () => {
  it('claimOnce: claiming `paid` on a document in state `PAID` (from omitted) is alreadyClaimed', async () => {
    const doc = { _id: 'o1', status: 'PAID' };
    const { collection, calls } = caseInsensitiveCollection([doc]);
    const result = await claimOnce(collection, {
      filter: { _id: 'o1' },
      field: 'status',
      to: 'paid',
    });
    expect(result).toEqual({ outcome: 'alreadyClaimed', document: doc });
    expect(calls).toEqual(['findAndModify', 'find']);
  });

  it('claimOnce: opId `req-1` after `REQ-1` is alreadyApplied', async () => {
    const doc = { _id: 'o1', status: 'paid', _opIds: ['REQ-1'] };
    const { collection } = caseInsensitiveCollection([doc]);
    const result = await claimOnce(collection, {
      filter: { _id: 'o1' },
      field: 'status',
      from: 'pending',
      to: 'shipped',
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: doc });
  });

  it('guardedDecrement: opId `req-1` after `REQ-1` is alreadyApplied, not insufficient', async () => {
    const doc = { _id: 'p1', stock: 5, _opIds: ['REQ-1'] };
    const { collection, calls } = caseInsensitiveCollection([doc]);
    const result = await guardedDecrement(collection, {
      filter: { _id: 'p1' },
      field: 'stock',
      amount: 1,
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: doc });
    // One command: the update's projection asked the server (see failure-read.ts).
    expect(calls).toEqual(['findAndModify']);
  });

  it('guardedDecrement with a filter that may match several documents: the failure read asks the server', async () => {
    const doc = { _id: 'p1', sku: 'tee', stock: 5, _opIds: ['REQ-1'] };
    const { collection, calls } = caseInsensitiveCollection([doc]);
    const result = await guardedDecrement(collection, {
      filter: { sku: 'tee' },
      field: 'stock',
      amount: 1,
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: doc });
    expect(calls).toEqual(['findAndModify', 'find']);
  });

  it('addToSetWithCapacity: member `Alice` when `alice` holds a place is alreadyMember', async () => {
    const doc = { _id: 'e1', members: ['alice'], count: 1, capacity: 5 };
    const { collection, calls } = caseInsensitiveCollection([doc]);
    const result = await addToSetWithCapacity(collection, {
      filter: { _id: 'e1' },
      array: 'members',
      member: 'Alice',
      counter: 'count',
      capacity: 'capacity',
    });
    expect(result).toEqual({ outcome: 'alreadyMember', document: doc });
    // One command: the update's projection asked the server (see failure-read.ts).
    expect(calls).toEqual(['findAndModify']);
  });

  it('addToSetWithCapacity with a filter that is no `_id` equality: the failure read asks the server', async () => {
    const doc = { _id: 'e1', members: ['alice'], count: 1, capacity: 5 };
    const { collection, calls } = caseInsensitiveCollection([doc]);
    const result = await addToSetWithCapacity(collection, {
      filter: { _id: { $in: ['e1'] } },
      array: 'members',
      member: 'Alice',
      counter: 'count',
      capacity: 'capacity',
    });
    expect(result).toEqual({ outcome: 'alreadyMember', document: doc });
    expect(calls).toEqual(['findAndModify', 'find']);
  });

  it('addToSetWithCapacity: opId `req-1` after `REQ-1` is alreadyApplied', async () => {
    const doc = { _id: 'e1', members: ['bob'], count: 1, capacity: 5, _opIds: ['REQ-1'] };
    const { collection } = caseInsensitiveCollection([doc]);
    const result = await addToSetWithCapacity(collection, {
      filter: { _id: 'e1' },
      array: 'members',
      member: 'carol',
      counter: 'count',
      capacity: 'capacity',
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: doc });
  });

  it('removeFromSetWithCapacity: opId `req-1` after `REQ-1` is alreadyApplied, not notMember', async () => {
    const doc = { _id: 'e1', members: [], count: 0, _opIds: ['REQ-1'] };
    const { collection } = caseInsensitiveCollection([doc]);
    const result = await removeFromSetWithCapacity(collection, {
      filter: { _id: 'e1' },
      array: 'members',
      member: 'alice',
      counter: 'count',
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: doc });
  });

  it('applyProgress: opId `req-1` after `REQ-1` is alreadyApplied, not notFound', async () => {
    const doc = { _id: 's1', xp: 40, _opIds: ['REQ-1'] };
    const { collection, calls } = caseInsensitiveCollection([doc]);
    const result = await applyProgress(collection, {
      filter: { _id: 's1' },
      inc: { xp: 40 },
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: doc });
    // The `_id` filter: the op id guard is in the update, its projection tells the repeat.
    expect(calls).toEqual(['findAndModify']);
  });

  it('applyProgress, a filter without an _id equality: opId `req-1` after `REQ-1` is alreadyApplied, told by the failure read', async () => {
    const doc = { _id: 's1', xp: 40, _opIds: ['REQ-1'] };
    const { collection, calls } = caseInsensitiveCollection([doc]);
    const result = await applyProgress(collection, {
      filter: { xp: 40 },
      inc: { xp: 40 },
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: doc });
    expect(calls).toEqual(['findAndModify', 'find']);
  });

  it('updateWithVersion: opId `req-1` after `REQ-1` is alreadyApplied on the first read, nothing computed', async () => {
    const doc = { _id: 'a1', balance: 10, version: 3, _opIds: ['REQ-1'] };
    const { collection, calls } = caseInsensitiveCollection([doc]);
    let computed = 0;
    const result = await updateWithVersion(collection, {
      filter: { _id: 'a1' },
      update: () => {
        computed += 1;
        return { $inc: { balance: 5 } };
      },
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: doc });
    expect(computed).toBe(0);
    expect(calls).toEqual(['find']);
  });
});

describe('the failure read trusts only verdicts the server computed', () => {
  it('a reply without evaluated verdicts (a server before 4.4 ignores projection expressions) throws MongoAtomicsError naming the primitive', async () => {
    const doc = { _id: 'p1', sku: 'tee', stock: 0, _opIds: ['req-1'] };
    const stub = {
      collectionName: 'old_server',
      findOneAndUpdate: async () => null,
      // MongoDB 4.2 returns the document, not the expressions it was asked for.
      findOne: async () => doc,
    } as unknown as Collection<typeof doc>;
    const error = await guardedDecrement(stub, {
      filter: { sku: 'tee' },
      field: 'stock',
      amount: 1,
      opId: 'req-1',
    }).catch((e: unknown) => e);
    expect(isMongoAtomicsError(error)).toBe(true);
    expect((error as Error).message).toBe(
      'guardedDecrement: the server did not evaluate the find projection that tells the outcomes apart; nothing was changed. MongoDB 4.4 or later is required: upgrade the server',
    );
  });

  it('a findAndModify reply without the evaluated projection throws MongoAtomicsError naming the primitive, whatever the outcome would be', async () => {
    // Shapes no mongod 4.4+ sends (a proxy dropping computed fields, a field of the wrong
    // type): the library must refuse them, not read an outcome from them.
    // With an opId (two writes: the `$replaceWith` form, success as `written`) and without
    // one (one top-level write: the `$set` form, success as `before` + `value`).
    const replies: [Document, string | undefined][] = [
      [{ stock: 0 }, 'req-1'],
      [{ r: 'no' }, 'req-1'],
      [{ r: {} }, 'req-1'],
      [{ r: { verdicts: {}, facts: {} } }, 'req-1'],
      [{ r: { verdicts: { applied: 'yes' }, facts: {} } }, 'req-1'],
      [{ r: { verdicts: { applied: true }, facts: {} } }, 'req-1'],
      [{ r: { verdicts: { applied: false }, facts: {}, document: { _id: 'p1' } } }, 'req-1'],
      [{ r: { verdicts: { applied: false }, facts: 3 } }, 'req-1'],
      [{ r: { written: 5 } }, 'req-1'],
      [{ r: { before: { _id: 'p1', stock: 4 }, value: 3 } }, 'req-1'],
      [{ r: {} }, undefined],
      [{ r: { facts: 'x' } }, undefined],
      [{ r: { before: { _id: 'p1', stock: 4 } } }, undefined],
      [{ r: { before: 'p1', value: 3 } }, undefined],
      [{ r: { written: { _id: 'p1', stock: 3 } } }, undefined],
    ];
    for (const [reply, opId] of replies) {
      const stub = {
        collectionName: 'proxy',
        findOneAndUpdate: async () => reply,
      } as unknown as Collection<{ _id: string; stock: number }>;
      const error = await guardedDecrement(stub, {
        filter: { _id: 'p1' },
        field: 'stock',
        amount: 1,
        opId,
      }).catch((e: unknown) => e);
      expect(isMongoAtomicsError(error), JSON.stringify(reply)).toBe(true);
      expect((error as Error).message).toBe(
        'guardedDecrement: the server did not evaluate the findAndModify projection that tells the outcomes apart. MongoDB 4.4 or later is required: upgrade the server',
      );
    }
  });
});
