/**
 * Operators the offline server refuses by name rather than answer differently from mongod:
 * `$toHashedIndexKey` (5.0+; manual, reference/operator/aggregation/toHashedIndexKey: mongod's
 * hash of the value, which mingo's own hash is not) and server-side JavaScript (`$function`,
 * `$accumulator`, `$where`; manual, reference/operator/aggregation/function, accumulator and
 * query/where), which is never run in the server process. mongod runs these, so the refusals
 * (NotImplemented 238; BadValue for `$where`) cannot be conformance tests: they live here. The
 * server under test is started in-process, whatever backend the rest of the suite uses.
 *
 * JavaScript reaches the server as BSON code (`Code`) or a string, never as a function.
 */
import { Code, type Document, MongoClient, MongoServerError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OfflineServer, startOfflineServer } from '../../offline-server/src/index.js';
import { rejectionOf } from '../support/async.js';

let server: OfflineServer;
let client: MongoClient;
let counter = 0;
const DB = 'refused_expressions';
/** What a body would set if it ever ran in the server process. */
const MARK = '__offlineServerRanClientCode';
const MARKING = `function () { globalThis.${MARK} = true; return 1; }`;

beforeAll(async () => {
  server = await startOfflineServer({ port: 0 });
  client = new MongoClient(server.uri);
  await client.connect();
});

afterAll(async () => {
  await client?.close();
  await server?.close();
});

async function seeded() {
  counter += 1;
  const collection = client.db(DB).collection<{ _id: number; a: number }>(`c${counter}`);
  await collection.insertMany([
    { _id: 1, a: 2 },
    { _id: 2, a: 3 },
  ]);
  return collection;
}

async function refusal(promise: Promise<unknown>): Promise<MongoServerError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(MongoServerError);
  return error as MongoServerError;
}

function expectNotImplemented(error: MongoServerError, name: string): void {
  expect(error.code).toBe(238);
  expect(error.codeName).toBe('NotImplemented');
  expect(error.message).toContain(`does not implement ${name}`);
}

describe('$toHashedIndexKey', () => {
  it('is refused by name in a pipeline and in a find $expr, never answered with another hash', async () => {
    const collection = await seeded();
    expectNotImplemented(
      await refusal(
        collection.aggregate([{ $project: { h: { $toHashedIndexKey: '$a' } } }]).toArray(),
      ),
      '$toHashedIndexKey',
    );
    expectNotImplemented(
      await refusal(
        collection.find({ $expr: { $eq: [{ $toHashedIndexKey: '$a' }, 0] } }).toArray(),
      ),
      '$toHashedIndexKey',
    );
  });
});

describe('server-side JavaScript', () => {
  for (const [label, body] of [
    ['BSON code', new Code(MARKING)],
    ['a string', MARKING],
  ] as const) {
    it(`$function with ${label} as its body is refused by name and not run`, async () => {
      const collection = await seeded();
      const error = await refusal(
        collection
          .aggregate([{ $project: { x: { $function: { body, args: [], lang: 'js' } } } }])
          .toArray(),
      );
      expectNotImplemented(error, '$function');
      expect(error.message).toContain('server-side JavaScript');
      expect(Object.hasOwn(globalThis, MARK)).toBe(false);
    });

    it(`$accumulator with ${label} as its functions is refused by name and not run`, async () => {
      const collection = await seeded();
      const accumulator = {
        init: body,
        accumulate: body,
        accumulateArgs: ['$a'],
        merge: body,
        lang: 'js',
      };
      const error = await refusal(
        collection
          .aggregate([{ $group: { _id: null, x: { $accumulator: accumulator } } }])
          .toArray(),
      );
      expectNotImplemented(error, '$accumulator');
      expect(Object.hasOwn(globalThis, MARK)).toBe(false);
    });

    it(`$where with ${label} is refused by name, in find and in $match`, async () => {
      const collection = await seeded();
      const filter = { $where: body } as Document;
      for (const promise of [
        collection.find(filter).toArray(),
        collection.aggregate([{ $match: filter }]).toArray(),
      ]) {
        const error = await refusal(promise);
        expect(error.code).toBe(2);
        expect(error.codeName).toBe('BadValue');
        expect(error.message).toContain('$where is not supported by the offline test server');
      }
      expect(Object.hasOwn(globalThis, MARK)).toBe(false);
    });
  }

  it('$setWindowFields, which mingo evaluates through its own $function, still works', async () => {
    const collection = await seeded();
    const result = await collection
      .aggregate([
        {
          $setWindowFields: {
            sortBy: { a: 1 },
            output: { running: { $sum: '$a', window: { documents: ['unbounded', 'current'] } } },
          },
        },
        { $project: { _id: 1, running: 1 } },
      ])
      .toArray();
    expect(result).toEqual([
      { _id: 1, running: 2 },
      { _id: 2, running: 5 },
    ]);
  });
});
