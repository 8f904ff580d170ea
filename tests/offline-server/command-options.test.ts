/**
 * Every documented field of every implemented command is either honoured (and a conformance
 * test, which passes on mongod too, pins it) or refused with an error naming it: nothing a
 * command carries is accepted and ignored. Field lists: the MongoDB 7.0 manual page of each
 * command (reference/command/<name>); generic arguments: src/mongo/idl/generic_argument.idl.
 *
 * Refusals that only the offline server makes (NotImplemented, 238) cannot be conformance
 * tests, since mongod accepts these fields; they live here. The server under test is started
 * in-process, whatever backend the rest of the suite uses.
 */
import { readFileSync } from 'node:fs';
import { type ClientSession, type Document, MongoClient, MongoServerError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OfflineServer, startOfflineServer } from '../../offline-server/src/index.js';
import { rejectionOf } from '../support/async.js';

let server: OfflineServer;
let client: MongoClient;
let counter = 0;
const DB = 'command_options';

beforeAll(async () => {
  server = await startOfflineServer({ port: 0 });
  client = new MongoClient(server.uri);
  await client.connect();
});

afterAll(async () => {
  await client?.close();
  await server?.close();
});

/** A fresh collection holding three documents, with an index on `n`. */
async function seeded(): Promise<string> {
  counter += 1;
  const name = `c${counter}`;
  const collection = client.db(DB).collection<{ _id: number; name: string; n: number }>(name);
  await collection.insertMany([
    { _id: 1, name: 'Ann', n: 1 },
    { _id: 2, name: 'bob', n: 2 },
    { _id: 3, name: 'Cid', n: 3 },
  ]);
  await collection.createIndex({ n: 1 }, { name: 'n_1' });
  return name;
}

/** What the server must do with a field. */
type Expectation =
  /** Honoured; the conformance file that pins it (it must mention the field). */
  | { readonly honoured: string }
  /** Another part of the server answers for it (not refused by the option check). */
  | { readonly elsewhere: string }
  /** Refused by name; NotImplemented (238) unless another code is given. */
  | { readonly refused: number }
  /** Unknown to MongoDB 7.0: 40415, or 197 inside an index specification. */
  | { readonly unknown: number };

const CONFORMANCE = 'tests/conformance';
const pinned = (file: string): Expectation => ({ honoured: `${CONFORMANCE}/${file}.test.ts` });
const OPTIONS_PIN = pinned('command-options');
const REFUSED: Expectation = { refused: 238 };
const UNKNOWN: Expectation = { unknown: 40415 };
const LET = pinned('let-variables');
const READ_CONCERN = pinned('cluster-time');
/** Update statement constants: read by pipeline updates, 51198 with an operator update. */
const CONSTANTS: Expectation = { elsewhere: 'tests/conformance/let-variables.test.ts (51198)' };
const CASE_INSENSITIVE = { locale: 'en', strength: 2 };

interface Row {
  readonly field: string;
  readonly value: unknown;
  readonly expect: Expectation;
  /** Where the field goes: the command, its first statement / index spec, or its cursor. */
  readonly at?: 'command' | 'first' | 'cursor';
}

interface Sent {
  readonly db: string;
  readonly command: Document;
  /** The array holding statements or index specs, for rows `at: 'first'`. */
  readonly list?: string;
  readonly session?: ClientSession;
}

interface CommandCase {
  readonly name: string;
  readonly build: (collection: string) => Promise<Sent>;
  readonly rows: readonly Row[];
}

const row = (field: string, value: unknown, expectation: Expectation, at?: Row['at']): Row =>
  at === undefined
    ? { field, value, expect: expectation }
    : { field, value, expect: expectation, at };

/** comment and maxTimeMS, which every command takes, read or write concern, and an unknown field. */
function generic(read: boolean, write: boolean): Row[] {
  const rows = [
    row('comment', 'why', OPTIONS_PIN),
    row('maxTimeMS', 60_000, OPTIONS_PIN),
    row('bogusOption', 1, UNKNOWN),
  ];
  if (read) rows.push(row('readConcern', { level: 'local' }, READ_CONCERN));
  if (write) rows.push(row('writeConcern', { w: 'majority' }, OPTIONS_PIN));
  return rows;
}

async function cursorOn(collection: string): Promise<unknown> {
  const reply = await client.db(DB).command({ find: collection, batchSize: 1 });
  return (reply.cursor as Document).id;
}

async function inTransaction(collection: string): Promise<ClientSession> {
  const session = client.startSession();
  session.startTransaction();
  await client
    .db(DB)
    .collection(collection)
    .insertOne({ _id: 10 } as Document, { session });
  return session;
}

const COMMANDS: readonly CommandCase[] = [
  {
    name: 'insert',
    build: async (c) => ({ db: DB, command: { insert: c, documents: [{ _id: 7 }] } }),
    rows: [
      row('ordered', false, pinned('errors')),
      row('bypassDocumentValidation', true, OPTIONS_PIN),
      ...generic(false, true),
    ],
  },
  {
    name: 'update',
    build: async (c) => ({
      db: DB,
      list: 'updates',
      command: { update: c, updates: [{ q: { name: 'ann' }, u: { $set: { x: 1 } } }] },
    }),
    rows: [
      row('ordered', false, pinned('errors')),
      row('bypassDocumentValidation', true, OPTIONS_PIN),
      row('let', { v: 1 }, LET),
      row('upsert', true, pinned('upsert'), 'first'),
      row('multi', true, pinned('commands'), 'first'),
      row('arrayFilters', [], pinned('update-operators'), 'first'),
      row('collation', { locale: 'simple' }, OPTIONS_PIN, 'first'),
      row('collation', CASE_INSENSITIVE, REFUSED, 'first'),
      row('hint', 'n_1', REFUSED, 'first'),
      row('hint', { n: 1 }, REFUSED, 'first'),
      row('c', { v: 1 }, CONSTANTS, 'first'),
      // MongoDB 8.0's update `sort`: unknown to 7.0 (tests/conformance/version-honesty.test.ts).
      row('sort', { n: 1 }, UNKNOWN, 'first'),
      row('bogusOption', 1, UNKNOWN, 'first'),
      ...generic(false, true),
    ],
  },
  {
    name: 'delete',
    build: async (c) => ({
      db: DB,
      list: 'deletes',
      command: { delete: c, deletes: [{ q: { name: 'ann' }, limit: 1 }] },
    }),
    rows: [
      row('ordered', false, pinned('commands')),
      row('let', { v: 1 }, LET),
      row('collation', { locale: 'simple' }, OPTIONS_PIN, 'first'),
      row('collation', CASE_INSENSITIVE, REFUSED, 'first'),
      row('hint', 'n_1', REFUSED, 'first'),
      row('bogusOption', 1, UNKNOWN, 'first'),
      ...generic(false, true),
    ],
  },
  {
    name: 'findAndModify',
    build: async (c) => ({
      db: DB,
      command: { findAndModify: c, query: { name: 'ann' }, update: { $set: { x: 1 } } },
    }),
    rows: [
      row('sort', { n: -1 }, pinned('commands')),
      row('new', true, pinned('commands')),
      row('fields', { _id: 1 }, pinned('commands')),
      row('upsert', true, pinned('commands')),
      row('arrayFilters', [], pinned('update-operators')),
      row('bypassDocumentValidation', true, OPTIONS_PIN),
      row('let', { v: 1 }, LET),
      row('collation', { locale: 'simple' }, OPTIONS_PIN),
      row('collation', CASE_INSENSITIVE, REFUSED),
      row('hint', 'n_1', REFUSED),
      ...generic(false, true),
    ],
  },
  {
    name: 'find',
    build: async (c) => ({ db: DB, command: { find: c, filter: { name: 'ann' } } }),
    rows: [
      row('sort', { n: -1 }, pinned('cursors')),
      row('projection', { _id: 1 }, OPTIONS_PIN),
      row('skip', 1, pinned('crud')),
      row('limit', 1, pinned('crud')),
      row('batchSize', 1, pinned('cursors')),
      row('singleBatch', true, pinned('cursors')),
      row('let', { v: 1 }, LET),
      row('allowDiskUse', true, OPTIONS_PIN),
      row('noCursorTimeout', true, OPTIONS_PIN),
      row('allowPartialResults', true, OPTIONS_PIN),
      row('oplogReplay', true, OPTIONS_PIN),
      row('returnKey', false, OPTIONS_PIN),
      row('showRecordId', false, OPTIONS_PIN),
      row('tailable', false, OPTIONS_PIN),
      row('awaitData', false, OPTIONS_PIN),
      row('collation', { locale: 'simple' }, OPTIONS_PIN),
      row('collation', CASE_INSENSITIVE, REFUSED),
      row('hint', 'n_1', REFUSED),
      row('hint', { $natural: 1 }, REFUSED),
      row('max', { n: 2 }, REFUSED),
      row('min', { n: 2 }, REFUSED),
      row('returnKey', true, REFUSED),
      row('showRecordId', true, REFUSED),
      row('tailable', true, REFUSED),
      row('awaitData', true, REFUSED),
      ...generic(true, false),
    ],
  },
  {
    name: 'getMore',
    build: async (c) => ({
      db: DB,
      command: { getMore: await cursorOn(c), collection: c },
    }),
    rows: [row('batchSize', 1, pinned('cursors')), ...generic(false, false)],
  },
  {
    name: 'killCursors',
    build: async (c) => ({ db: DB, command: { killCursors: c, cursors: [await cursorOn(c)] } }),
    rows: generic(false, false),
  },
  {
    name: 'aggregate',
    build: async (c) => ({
      db: DB,
      command: { aggregate: c, pipeline: [{ $match: { name: 'ann' } }], cursor: {} },
    }),
    rows: [
      row('batchSize', 1, pinned('cursors'), 'cursor'),
      row('bogusOption', 1, UNKNOWN, 'cursor'),
      row('allowDiskUse', true, OPTIONS_PIN),
      row('bypassDocumentValidation', true, OPTIONS_PIN),
      row('explain', false, OPTIONS_PIN),
      row('explain', true, REFUSED),
      row('let', { v: 1 }, LET),
      row('collation', { locale: 'simple' }, OPTIONS_PIN),
      row('collation', CASE_INSENSITIVE, REFUSED),
      row('hint', 'n_1', REFUSED),
      ...generic(true, true),
    ],
  },
  {
    name: 'count',
    build: async (c) => ({ db: DB, command: { count: c, query: { name: 'ann' } } }),
    rows: [
      row('limit', 1, pinned('crud')),
      row('skip', 1, pinned('crud')),
      row('collation', { locale: 'simple' }, OPTIONS_PIN),
      row('collation', CASE_INSENSITIVE, REFUSED),
      row('hint', 'n_1', REFUSED),
      ...generic(true, false),
    ],
  },
  {
    name: 'distinct',
    build: async (c) => ({ db: DB, command: { distinct: c, key: 'name', query: { name: 'ann' } } }),
    rows: [
      row('collation', { locale: 'simple' }, OPTIONS_PIN),
      row('collation', CASE_INSENSITIVE, REFUSED),
      row('hint', 'n_1', REFUSED),
      ...generic(true, false),
    ],
  },
  {
    name: 'createIndexes',
    build: async (c) => ({
      db: DB,
      list: 'indexes',
      command: { createIndexes: c, indexes: [{ key: { name: 1 }, name: 'name_1' }] },
    }),
    rows: [
      row('commitQuorum', 'votingMembers', OPTIONS_PIN),
      row('unique', true, pinned('indexes'), 'first'),
      row('sparse', true, OPTIONS_PIN, 'first'),
      row('partialFilterExpression', { n: { $gt: 1 } }, pinned('indexes'), 'first'),
      row('expireAfterSeconds', 60, OPTIONS_PIN, 'first'),
      row('background', true, OPTIONS_PIN, 'first'),
      row('v', 2, OPTIONS_PIN, 'first'),
      row('hidden', false, OPTIONS_PIN, 'first'),
      row('prepareUnique', false, OPTIONS_PIN, 'first'),
      row('collation', { locale: 'simple' }, OPTIONS_PIN, 'first'),
      row('collation', CASE_INSENSITIVE, REFUSED, 'first'),
      row('v', 1, REFUSED, 'first'),
      row('hidden', true, REFUSED, 'first'),
      row('prepareUnique', true, REFUSED, 'first'),
      row('key', { name: 'text' }, REFUSED, 'first'),
      row('key', { name: 'hashed' }, REFUSED, 'first'),
      row('key', { '$**': 1 }, pinned('indexes'), 'first'),
      row('storageEngine', { wiredTiger: {} }, REFUSED, 'first'),
      row('weights', { name: 2 }, REFUSED, 'first'),
      row('default_language', 'english', REFUSED, 'first'),
      row('language_override', 'lang', REFUSED, 'first'),
      row('textIndexVersion', 3, REFUSED, 'first'),
      row('2dsphereIndexVersion', 3, REFUSED, 'first'),
      row('bits', 26, REFUSED, 'first'),
      row('min', -90, REFUSED, 'first'),
      row('max', 90, REFUSED, 'first'),
      row('wildcardProjection', { name: 1 }, REFUSED, 'first'),
      row('clustered', true, REFUSED, 'first'),
      row('bogusOption', 1, { unknown: 197 }, 'first'),
      ...generic(false, true),
    ],
  },
  {
    name: 'listIndexes',
    build: async (c) => ({ db: DB, command: { listIndexes: c } }),
    rows: [
      row('batchSize', 1, pinned('cursors'), 'cursor'),
      row('bogusOption', 1, UNKNOWN, 'cursor'),
      ...generic(false, false),
    ],
  },
  {
    name: 'dropIndexes',
    build: async (c) => ({ db: DB, command: { dropIndexes: c, index: 'n_1' } }),
    rows: generic(false, true),
  },
  {
    name: 'create',
    build: async (c) => ({ db: DB, command: { create: `${c}_new` } }),
    rows: [
      row('collation', { locale: 'simple' }, OPTIONS_PIN),
      // Collection options: the create handler refuses them (InvalidOptions, 72), after it has
      // answered NamespaceExists for an existing collection as mongod does (commands.test.ts).
      ...(
        [
          ['collation', CASE_INSENSITIVE],
          ['capped', true],
          ['size', 4096],
          ['max', 10],
          ['timeseries', { timeField: 't' }],
          ['expireAfterSeconds', 60],
          ['clusteredIndex', { key: { _id: 1 }, unique: true }],
          ['changeStreamPreAndPostImages', { enabled: true }],
          ['autoIndexId', false],
          ['storageEngine', { wiredTiger: {} }],
          ['validator', { n: { $gt: 0 } }],
          ['validationLevel', 'strict'],
          ['validationAction', 'error'],
          ['indexOptionDefaults', { storageEngine: {} }],
          ['viewOn', 'other'],
          ['pipeline', []],
          ['encryptedFields', { fields: [] }],
        ] as const
      ).map(([field, value]) => row(field, value, { refused: 72 })),
      ...generic(false, true),
    ],
  },
  {
    name: 'drop',
    build: async (c) => ({ db: DB, command: { drop: c } }),
    rows: generic(false, true),
  },
  {
    name: 'dropDatabase',
    build: async (c) => ({ db: `${DB}_${c}`, command: { dropDatabase: 1 } }),
    rows: generic(false, true),
  },
  {
    name: 'listCollections',
    build: async (c) => ({ db: DB, command: { listCollections: 1, filter: { name: c } } }),
    rows: [
      row('nameOnly', true, pinned('commands')),
      row('authorizedCollections', true, OPTIONS_PIN),
      row('batchSize', 1, OPTIONS_PIN, 'cursor'),
      row('bogusOption', 1, UNKNOWN, 'cursor'),
      ...generic(false, false),
    ],
  },
  {
    name: 'listDatabases',
    build: async () => ({ db: 'admin', command: { listDatabases: 1 } }),
    rows: [
      row('filter', { name: DB }, OPTIONS_PIN),
      row('nameOnly', true, OPTIONS_PIN),
      row('authorizedDatabases', true, OPTIONS_PIN),
      ...generic(false, false),
    ],
  },
  {
    name: 'commitTransaction',
    build: async (c) => ({
      db: 'admin',
      command: { commitTransaction: 1 },
      session: await inTransaction(c),
    }),
    rows: [row('recoveryToken', {}, REFUSED), ...generic(false, true)],
  },
  {
    name: 'abortTransaction',
    build: async (c) => ({
      db: 'admin',
      command: { abortTransaction: 1 },
      session: await inTransaction(c),
    }),
    rows: [row('recoveryToken', {}, REFUSED), ...generic(false, true)],
  },
];

/** The command with the row's field put in place, and the path an error names it by. */
function placed(sent: Sent, r: Row): { command: Document; path: string } {
  const name = Object.keys(sent.command)[0] as string;
  if (r.at === 'first') {
    const list = sent.command[sent.list as string] as Document[];
    const first = { ...list[0], [r.field]: r.value };
    return {
      command: { ...sent.command, [sent.list as string]: [first, ...list.slice(1)] },
      path: `${name}.${sent.list}.${r.field}`,
    };
  }
  if (r.at === 'cursor') {
    return {
      command: { ...sent.command, cursor: { [r.field]: r.value } },
      path: `${name}.cursor.${r.field}`,
    };
  }
  return { command: { ...sent.command, [r.field]: r.value }, path: `${name}.${r.field}` };
}

function describeRow(r: Row): string {
  const where = r.at === 'first' ? 'statement/spec ' : r.at === 'cursor' ? 'cursor ' : '';
  return `${where}${r.field}: ${JSON.stringify(r.value)}`;
}

describe('every documented field of every implemented command is honoured or refused by name', () => {
  for (const commandCase of COMMANDS) {
    describe(commandCase.name, () => {
      for (const r of commandCase.rows) {
        const kind = Object.keys(r.expect)[0];
        it(`${describeRow(r)} is ${kind}`, async () => {
          const collection = await seeded();
          const sent = await commandCase.build(collection);
          const { command, path } = placed(sent, r);
          const options = sent.session === undefined ? {} : { session: sent.session };
          const outcome = await client
            .db(sent.db)
            .command(command, options)
            .then(
              (reply) => ({ reply }),
              (error: unknown) => ({ error }),
            )
            .finally(() => sent.session?.endSession());
          const expectation = r.expect;
          if ('refused' in expectation || 'unknown' in expectation) {
            expect('error' in outcome, `${path} was accepted`).toBe(true);
            const error = (outcome as { error: unknown }).error;
            expect(error).toBeInstanceOf(MongoServerError);
            const serverError = error as MongoServerError;
            if ('refused' in expectation) {
              expect(serverError.code).toBe(expectation.refused);
              expect(serverError.message).toContain(
                expectation.refused === 238 ? `'${path}'` : r.field,
              );
              if (expectation.refused === 238) expect(serverError.codeName).toBe('NotImplemented');
            } else {
              expect(serverError.code).toBe(expectation.unknown);
              expect(serverError.message).toContain(
                expectation.unknown === 197 ? `'${r.field}'` : `'${path}' is an unknown field`,
              );
            }
            return;
          }
          if ('honoured' in expectation) {
            expect(outcome, `${path} was refused`).toHaveProperty('reply.ok', 1);
            // The pin exists and is about this field.
            expect(readFileSync(expectation.honoured, 'utf8')).toContain(r.field);
            return;
          }
          // Another topic's: whatever it answers, the option check did not refuse it.
          if ('error' in outcome) {
            const code = (outcome.error as MongoServerError).code;
            expect([238, 40415, 197]).not.toContain(code);
          }
        });
      }
    });
  }
});

describe('collation: a case-insensitive query is refused, never answered binary', () => {
  it('find, countDocuments, distinct, aggregate, updateOne, deleteOne and findOneAndUpdate through the driver', async () => {
    const c = client.db(DB).collection(await seeded());
    const collation = CASE_INSENSITIVE;
    const attempts: [string, () => Promise<unknown>][] = [
      ['find', () => c.find({ name: 'ann' }, { collation }).toArray()],
      ['aggregate', () => c.countDocuments({ name: 'ann' }, { collation })],
      ['distinct', () => c.distinct('name', { name: 'ann' }, { collation })],
      ['aggregate', () => c.aggregate([{ $match: { name: 'ann' } }], { collation }).toArray()],
      ['update.updates', () => c.updateOne({ name: 'ann' }, { $set: { x: 1 } }, { collation })],
      ['delete.deletes', () => c.deleteOne({ name: 'ann' }, { collation })],
      [
        'findAndModify',
        () => c.findOneAndUpdate({ name: 'ann' }, { $set: { x: 1 } }, { collation }),
      ],
      ['createIndexes.indexes', () => c.createIndex({ name: 1 }, { collation })],
    ];
    for (const [path, attempt] of attempts) {
      const error = await rejectionOf(attempt());
      expect(error).toBeInstanceOf(MongoServerError);
      expect((error as MongoServerError).code).toBe(238);
      expect((error as MongoServerError).message).toContain(`'${path}.collation'`);
    }
    // Nothing was written: the refused update left every document as it was.
    expect(await c.countDocuments({ x: { $exists: true } })).toBe(0);
    expect(await c.countDocuments()).toBe(3);
  });

  it('createCollection with a collation is refused naming it (InvalidOptions, 72)', async () => {
    const error = await rejectionOf(
      client.db(DB).createCollection(`ci${counter++}`, { collation: CASE_INSENSITIVE }),
    );
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(72);
    expect((error as MongoServerError).message).toContain('collation');
  });
});

describe('features the server does not implement are refused by name', () => {
  it('collMod (validators, views, TTL changes) is CommandNotFound (59) naming it', async () => {
    const c = await seeded();
    const error = await rejectionOf(
      client.db(DB).command({ collMod: c, validator: { n: { $gt: 0 } } }),
    );
    expect((error as MongoServerError).code).toBe(59);
    expect((error as MongoServerError).message).toContain('collMod');
  });

  it('a collection with a validator is refused (InvalidOptions, 72) naming validator', async () => {
    const error = await rejectionOf(
      client.db(DB).createCollection(`v${counter++}`, { validator: { n: { $type: 'int' } } }),
    );
    expect((error as MongoServerError).code).toBe(72);
    expect((error as MongoServerError).message).toContain('validator');
  });

  it('a view is refused (InvalidOptions, 72) naming viewOn', async () => {
    const c = await seeded();
    const error = await rejectionOf(
      client.db(DB).createCollection(`view${counter++}`, { viewOn: c, pipeline: [] }),
    );
    expect((error as MongoServerError).code).toBe(72);
    expect((error as MongoServerError).message).toContain('viewOn');
  });

  for (const [stage, spec] of [
    ['$out', 'elsewhere'],
    ['$merge', { into: 'elsewhere' }],
  ] as const) {
    it(`an aggregate with ${stage} is refused (CommandNotFound, 59) naming the stage, and writes nothing`, async () => {
      const c = await seeded();
      const error = await rejectionOf(
        client
          .db(DB)
          .collection(c)
          .aggregate([{ $match: {} }, { [stage]: spec }])
          .toArray(),
      );
      expect((error as MongoServerError).code).toBe(59);
      expect((error as MongoServerError).message).toContain(stage);
      const names = (await client.db(DB).listCollections({}, { nameOnly: true }).toArray()).map(
        (info) => info.name,
      );
      expect(names).not.toContain('elsewhere');
    });
  }

  it('an aggregate with $documents is refused (CommandNotFound, 59) naming the stage', async () => {
    const error = await rejectionOf(
      client
        .db(DB)
        .aggregate([{ $documents: [{ a: 1 }] }])
        .toArray(),
    );
    expect((error as MongoServerError).code).toBe(59);
    expect((error as MongoServerError).message).toContain('$documents');
  });

  it('explain is refused: the explain command is CommandNotFound (59)', async () => {
    const c = await seeded();
    const error = await rejectionOf(
      client.db(DB).command({ explain: { find: c, filter: {} }, verbosity: 'queryPlanner' }),
    );
    expect((error as MongoServerError).code).toBe(59);
    expect((error as MongoServerError).message).toContain('explain');
  });
});
