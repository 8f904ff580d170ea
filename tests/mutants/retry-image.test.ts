/**
 * Direct tests of src/retry-image.ts, written to kill the mutants the primitives' tests left
 * alive (npm run mutation; docs/reliability.md, "Mutation testing"): the exact text of the
 * "outcome unreadable" error and that it carries a `cause` only when there is one.
 *
 * `projectRetryImage` is given a stand-in collection whose `aggregate` fails or returns no
 * document: the two ways the read after a retried findAndModify can come back empty-handed.
 */
import type { Collection, Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { MongoAtomicsError } from '../../src/errors.js';
import { isUnprojectedImage, outcomeUnreadable, projectRetryImage } from '../../src/retry-image.js';

function collectionWhoseAggregate(toArray: () => Promise<Document[]>): Collection {
  return { aggregate: () => ({ toArray }) } as unknown as Collection;
}

function caught(run: () => unknown): Promise<unknown> {
  return Promise.resolve()
    .then(run)
    .then(
      () => {
        throw new Error('expected a rejection');
      },
      (error: unknown) => error,
    );
}

describe('outcomeUnreadable', () => {
  it('without a cause: the error has no cause property at all', async () => {
    const error = await caught(() => outcomeUnreadable('p', 'why'));
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect(Object.hasOwn(error as object, 'cause')).toBe(false);
    expect((error as Error).message).toBe(
      'p: the update was applied (a retried findAndModify was answered from the stored image, without the projection), but its outcome could not be read: why. Do not repeat the call blindly (pass an opId to make repeats safe).',
    );
  });

  it('with a cause: the cause is attached', async () => {
    const cause = new Error('boom');
    const error = await caught(() => outcomeUnreadable('p', 'why', cause));
    expect((error as Error).cause).toBe(cause);
  });
});

describe('projectRetryImage', () => {
  it('a failing aggregate: says so, the aggregate error as the cause', async () => {
    const cause = new Error('network');
    const error = await caught(() =>
      projectRetryImage(
        'prim',
        collectionWhoseAggregate(() => Promise.reject(cause)),
        { _id: 1 },
        { _id: 0 },
        undefined,
      ),
    );
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect((error as Error).message).toContain(
      'prim: the update was applied (a retried findAndModify was answered from the stored image, without the projection), but its outcome could not be read: the aggregate that evaluates it on the server failed.',
    );
    expect((error as Error).cause).toBe(cause);
  });

  it('no document back (deleted in between): says so, without a cause', async () => {
    const error = await caught(() =>
      projectRetryImage(
        'prim',
        collectionWhoseAggregate(() => Promise.resolve([])),
        { _id: 1 },
        { _id: 0 },
        undefined,
      ),
    );
    expect((error as Error).message).toContain(
      'could not be read: the document was deleted before the server could evaluate the outcome on its image.',
    );
    expect(Object.hasOwn(error as object, 'cause')).toBe(false);
  });

  it('returns the first projected document', async () => {
    const projected = await projectRetryImage(
      'prim',
      collectionWhoseAggregate(() => Promise.resolve([{ a: 1 }, { a: 2 }])),
      { _id: 1 },
      { _id: 0 },
      undefined,
    );
    expect(projected).toStrictEqual({ a: 1 });
  });

  it('isUnprojectedImage: an _id of its own marks the stored image', () => {
    expect(isUnprojectedImage({ _id: 1 })).toBe(true);
    expect(isUnprojectedImage({ _id: undefined })).toBe(true);
    expect(isUnprojectedImage(Object.create({ _id: 1 }) as Document)).toBe(false);
    expect(isUnprojectedImage({ a: 1 })).toBe(false);
  });
});
