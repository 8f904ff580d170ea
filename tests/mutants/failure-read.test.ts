/**
 * Direct tests of src/failure-read.ts, written to kill the mutants the primitives' tests left
 * alive (npm run mutation; docs/reliability.md, "Mutation testing").
 *
 * The first part runs against the test backend: the server evaluates the verdicts. The second
 * gives `readWithVerdicts` replies in shapes a MongoDB server before 4.4 or a broken proxy
 * could send (no `verdicts`, a verdict missing or not a boolean), which neither mongod 4.4+
 * nor the offline server sends, through a stand-in collection whose `findOne` returns them;
 * the library must refuse them rather than report an outcome from them.
 */
import type { ClientSession, Collection, Document } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import { MongoAtomicsError } from '../../src/errors.js';
import { holdsExpression, readWithVerdicts } from '../../src/failure-read.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants-failure-read');

describe('readWithVerdicts against the server', () => {
  afterEach(async () => {
    await t.db.collection('docs').deleteMany({});
  });

  it('returns the document and one boolean per question asked, skipping undefined ones', async () => {
    const docs = t.db.collection('docs');
    await docs.insertOne({ _id: 1 as never, state: 'paid', tags: ['a', 'b'] });
    t.commands.reset();
    const read = await readWithVerdicts(
      'test',
      docs,
      { _id: 1 },
      {
        paid: holdsExpression('state', 'paid'),
        pending: holdsExpression('state', 'pending'),
        tagged: holdsExpression('tags', 'b'),
        untagged: holdsExpression('tags', 'z'),
        skipped: undefined,
      },
      undefined,
    );
    expect(read).toStrictEqual({
      document: { _id: 1, state: 'paid', tags: ['a', 'b'] },
      verdicts: { paid: true, pending: false, tagged: true, untagged: false },
    });
    expect(t.commands.names()).toEqual(['find']);
    const find = t.commands.started[0]?.command as Document;
    expect(find.projection).toEqual({
      _id: 0,
      document: '$$ROOT',
      verdicts: {
        $mergeObjects: [
          {
            paid: holdsExpression('state', 'paid'),
            pending: holdsExpression('state', 'pending'),
            tagged: holdsExpression('tags', 'b'),
            untagged: holdsExpression('tags', 'z'),
          },
        ],
      },
    });
  });

  it('holdsExpression is false, not an error, on a missing or scalar field', async () => {
    const docs = t.db.collection('docs');
    await docs.insertOne({ _id: 2 as never, state: 5 });
    const read = await readWithVerdicts(
      'test',
      docs,
      { _id: 2 },
      { scalar: holdsExpression('state', 'x'), missing: holdsExpression('nothing', 'x') },
      undefined,
    );
    expect(read?.verdicts).toStrictEqual({ scalar: false, missing: false });
  });

  it('is null when nothing matches', async () => {
    const read = await readWithVerdicts(
      'test',
      t.db.collection('docs'),
      { _id: 'none' },
      { x: holdsExpression('a', 1) },
      undefined,
    );
    expect(read).toBeNull();
  });
});

/** A collection whose findOne resolves `reply` and records what it was asked. */
function replying(reply: Document | null) {
  const calls: unknown[][] = [];
  const collection = {
    findOne: async (...args: unknown[]) => {
      calls.push(args);
      return reply;
    },
  } as unknown as Collection;
  return { collection, calls };
}

describe('readWithVerdicts refuses replies no MongoDB 4.4+ sends', () => {
  const questions = { applied: { $literal: true }, claimed: { $literal: false } };
  const refused = [
    ['no document', { verdicts: { applied: true, claimed: false } }],
    [
      'a document that is not an object',
      { document: 1, verdicts: { applied: true, claimed: false } },
    ],
    ['no verdicts (a pre-4.4 projection of a literal)', { document: { _id: 1 } }],
    ['verdicts that are not an object', { document: { _id: 1 }, verdicts: 'x' }],
    ['a verdict missing', { document: { _id: 1 }, verdicts: { applied: true } }],
    [
      'a verdict that is not a boolean',
      { document: { _id: 1 }, verdicts: { applied: true, claimed: 0 } },
    ],
  ] as const;

  for (const [what, reply] of refused) {
    it(`refuses ${what}`, async () => {
      const { collection } = replying(reply);
      const error = await readWithVerdicts('claimOnce', collection, {}, questions, undefined).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(MongoAtomicsError);
      expect((error as Error).message).toBe(
        'claimOnce: the server did not evaluate the find projection that tells the outcomes apart; nothing was changed. MongoDB 4.4 or later is required: upgrade the server',
      );
    });
  }

  it('does not read an inherited verdict', async () => {
    const verdicts = Object.create({ claimed: false }) as Document;
    verdicts.applied = true;
    const { collection } = replying({ document: { _id: 1 }, verdicts });
    await expect(
      readWithVerdicts('claimOnce', collection, {}, questions, undefined),
    ).rejects.toBeInstanceOf(MongoAtomicsError);
  });

  it('passes the session to the read and reads no verdict it did not ask', async () => {
    const session = { inTransaction: () => true } as unknown as ClientSession;
    const { collection, calls } = replying({ document: { _id: 1 }, verdicts: {} });
    const read = await readWithVerdicts('x', collection, { a: 1 }, { skip: undefined }, session);
    expect(read).toStrictEqual({ document: { _id: 1 }, verdicts: {} });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.[0]).toEqual({ a: 1 });
    expect(calls[0]?.[1]).toStrictEqual({
      session,
      projection: { _id: 0, document: '$$ROOT', verdicts: { $mergeObjects: [{}] } },
    });
  });
});
