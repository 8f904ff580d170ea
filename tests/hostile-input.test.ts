/**
 * Hostile input, for every public primitive and every option a request can reach: options often
 * come straight from a JSON body, so each value here is one an attacker (or a buggy client) can
 * send. Every row must end in an InvalidArgumentError naming the option, with NO command sent
 * (the driver's command monitoring) and `Object.prototype` untouched.
 *
 * What the rows close (issue 7, items 1 and 4):
 * - path segments `__proto__`, `constructor`, `prototype`: ordinary field names to MongoDB, but a
 *   document rebuilt or read along them in JavaScript reaches `Object.prototype`;
 * - NUL bytes in paths and field names (BSON names end at the first NUL);
 * - NaN and ±Infinity, bare or wrapped in a BSON `Double` / `Decimal128`, as identities and
 *   amounts;
 * - plain objects carrying a `_bsontype` key (`{"_bsontype":"ObjectId","id":"x"}`), which are not
 *   BSON values whatever they claim;
 * - sessions of another MongoClient, and objects that merely look like a session;
 * - cyclic and 200-deep objects (MongoDB nests documents at most 100 levels; a cycle can never be
 *   serialised), which used to surface as a bare RangeError from the driver.
 *
 * Keys such as `__proto__` are built as own properties (JSON.parse, defineProperty), as a parsed
 * request body holds them: a `{ __proto__: … }` literal would set the prototype instead.
 */
import { Decimal128, Double, type MongoClient, ObjectId } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyProgress } from '../src/apply-progress.js';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../src/capacity-set.js';
import { claimOnce } from '../src/claim-once.js';
import { InvalidArgumentError, isInvalidArgumentError } from '../src/errors.js';
import { guardedDecrement, guardedDecrementAll } from '../src/guarded-decrement.js';
import { ensureIdempotencyIndexes, withIdempotencyKey } from '../src/idempotency.js';
import { incrementOrPushArrayItem } from '../src/increment-or-push.js';
import { withRetryingTransaction } from '../src/transaction.js';
import { updateWithVersion } from '../src/update-with-version.js';
import type { Doc } from './conformance/helpers.js';
import { rejectionOf } from './support/async.js';
import { newClient, useTestDatabase } from './support/mongo.js';

const t = useTestDatabase('hostile_input');

/** A client the test collection does not belong to, for sessions of "another MongoClient". */
let other: MongoClient;
beforeAll(async () => {
  other = newClient();
  await other.connect();
});
afterAll(async () => {
  await other.close();
});

/** What Object.prototype holds before any row runs; every row must leave it exactly so. */
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).sort();

/** An object whose keys are own data properties, even `__proto__` (as JSON.parse builds them). */
function own(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const target: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    Object.defineProperty(target, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return target;
}

function cyclic(): Record<string, unknown> {
  const a: Record<string, unknown> = { status: 'open' };
  a.self = { back: a };
  return a;
}

function deep(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { x: 1 };
  for (let i = 1; i < levels; i += 1) value = { a: value };
  return value;
}

const fakeObjectId = () => JSON.parse('{"_bsontype":"ObjectId","id":"aaaaaaaaaaaa"}') as unknown;
const fakeNullProto = () => Object.assign(Object.create(null), { _bsontype: 'Double', value: 1 });

/** Path values that must be refused wherever a path is taken. */
const BAD_PATHS = [
  '__proto__',
  'constructor',
  'prototype',
  '__proto__.isAdmin',
  'a.__proto__.isAdmin',
  'profile.constructor.prototype',
  'a.prototype',
  'a\0b',
  '\0',
] as const;

/** Values a single field name (a key of `match`, `inc`, …) must not be. */
const BAD_FIELD_NAMES = ['__proto__', 'constructor', 'prototype', 'a\0b'] as const;

/** Values an identity or state (`member`, `to`, a `match` value) must not be. */
const BAD_SCALARS: readonly [string, () => unknown][] = [
  ['NaN', () => Number.NaN],
  ['Infinity', () => Number.POSITIVE_INFINITY],
  ['-Infinity', () => Number.NEGATIVE_INFINITY],
  ['Double(NaN)', () => new Double(Number.NaN)],
  ['Double(Infinity)', () => new Double(Number.POSITIVE_INFINITY)],
  ['Double(-Infinity)', () => new Double(Number.NEGATIVE_INFINITY)],
  ["Decimal128('NaN')", () => Decimal128.fromString('NaN')],
  ["Decimal128('Infinity')", () => Decimal128.fromString('Infinity')],
  ["Decimal128('-Infinity')", () => Decimal128.fromString('-Infinity')],
  ['an object', () => ({})],
  ['an array', () => ['u1']],
  ['a function', () => () => 'u1'],
  ['an operator object', () => ({ $ne: null })],
];

/** Plain objects posing as BSON values; refused by name of the option that holds them. */
const FAKE_BSON: readonly [string, () => unknown][] = [
  ['a JSON {"_bsontype":"ObjectId"}', fakeObjectId],
  ['a null-prototype {_bsontype:"Double"}', fakeNullProto],
];

/** Values an amount must not be. */
const BAD_NUMBERS: readonly [string, () => unknown][] = [
  ['NaN', () => Number.NaN],
  ['Infinity', () => Number.POSITIVE_INFINITY],
  ['-Infinity', () => Number.NEGATIVE_INFINITY],
  ['Double(NaN)', () => new Double(Number.NaN)],
  ["Decimal128('Infinity')", () => Decimal128.fromString('Infinity')],
  ['a numeric string', () => '1'],
  ['a JSON {"_bsontype":"Double"}', () => JSON.parse('{"_bsontype":"Double","value":1}')],
];

/** Filters that must be refused: not an object, cyclic, too deep, fake BSON, NUL in a key. */
const BAD_FILTERS: readonly [string, () => unknown][] = [
  ['a string', () => 'x'],
  ['an array', () => [{ _id: 'x' }]],
  ['cyclic', cyclic],
  ['200 levels deep', () => deep(200)],
  ['101 levels deep', () => deep(101)],
  [
    'cyclic through an array',
    () => {
      const list: unknown[] = [];
      list.push({ $or: list });
      return { $and: list };
    },
  ],
  ['holding a fake ObjectId', () => ({ _id: fakeObjectId() })],
  ['with a NUL byte in a key', () => ({ 'a\0b': 1 })],
];

/** Sessions that must be refused: another client's, and look-alikes. */
const BAD_SESSIONS: readonly [string, () => unknown][] = [
  // In a transaction, so that guardedDecrementAll (which needs one) judges the owner, not that.
  [
    'of another MongoClient',
    () => {
      const session = other.startSession();
      session.startTransaction();
      return session;
    },
  ],
  [
    'a look-alike object',
    () => ({
      inTransaction: () => true,
      endSession: async () => undefined,
      hasEnded: false,
      transaction: {},
    }),
  ],
  ['an empty object', () => ({})],
];

type Call = (options: Record<string, unknown>) => Promise<unknown>;
interface Primitive {
  readonly name: string;
  readonly call: Call;
  readonly valid: Record<string, unknown>;
  /** Options taking a path: option name → options with that path. */
  readonly paths: readonly [string, (path: string) => Record<string, unknown>][];
  /** Options whose KEYS are paths (`inc` of applyProgress, `set` of claimOnce). */
  readonly pathKeys: readonly [string, (key: string) => Record<string, unknown>][];
  /** Options whose keys are single field names (`match`, `inc`, … of incrementOrPush). */
  readonly fieldKeys: readonly [string, (key: string) => Record<string, unknown>][];
  /** Options holding an identity: [option named by scalar errors, option named for fake BSON, build]. */
  readonly scalars: readonly [string, string, (value: unknown) => Record<string, unknown>][];
  /** Amount options: [option for bad numbers, option for fake BSON, build]. */
  readonly numbers: readonly [string, string, (value: unknown) => Record<string, unknown>][];
  /** Options holding a filter (or another serialised object): option → build. */
  readonly filters: readonly [string, (value: unknown) => Record<string, unknown>][];
  readonly session: boolean;
}

const coll = () => t.db.collection('hostile');
const opIdLog = (
  valid: Record<string, unknown>,
): [string, (path: string) => Record<string, unknown>] => [
  'opIdLog.field',
  (path: string) => ({ ...valid, opId: 'req-1', opIdLog: { field: path } }),
];

const progress = { filter: { _id: 's1' }, inc: { xp: 10 } };
const LEVEL = { field: 'level', counter: 'xp', thresholds: [100] };
const BADGES = { field: 'badges', rules: [{ badge: 'b', counter: 'xp', atLeast: 1 }] };
const seats = {
  filter: { _id: 'e1' },
  array: 'members',
  counter: 'count',
  member: 'u1',
};
const claim = { filter: { _id: 'o1' }, field: 'status', to: 'paid' };
const decrement = { filter: { _id: 'p1' }, field: 'stock', amount: 1 };
const cart = { filter: { userId: 'u1' }, array: 'courses', match: { courseId: 'c1' } };
const versioned = { filter: { _id: 's1' }, update: () => ({ $set: { a: 1 } }) };

const PRIMITIVES: readonly Primitive[] = [
  {
    name: 'applyProgress',
    call: (o) => applyProgress(coll(), o as never),
    valid: progress,
    paths: [
      ['level.field', (p) => ({ ...progress, level: { ...LEVEL, field: p } })],
      ['level.counter', (p) => ({ ...progress, level: { ...LEVEL, counter: p } })],
      ['badges.field', (p) => ({ ...progress, badges: { ...BADGES, field: p } })],
      [
        'badges.rules.0.counter',
        (p) => ({
          ...progress,
          badges: { ...BADGES, rules: [{ ...BADGES.rules[0], counter: p }] },
        }),
      ],
      opIdLog(progress),
    ],
    pathKeys: [['inc', (key) => ({ ...progress, inc: own([[key, 1]]) })]],
    fieldKeys: [],
    scalars: [],
    numbers: [['inc.xp', 'inc', (n) => ({ ...progress, inc: { xp: n } })]],
    filters: [['filter', (f) => ({ ...progress, filter: f })]],
    session: true,
  },
  {
    name: 'addToSetWithCapacity',
    call: (o) => addToSetWithCapacity(coll(), o as never),
    valid: { ...seats, capacity: 5 },
    paths: [
      ['array', (p) => ({ ...seats, capacity: 5, array: p })],
      ['counter', (p) => ({ ...seats, capacity: 5, counter: p })],
      ['capacity', (p) => ({ ...seats, capacity: p })],
      opIdLog({ ...seats, capacity: 5 }),
    ],
    pathKeys: [],
    fieldKeys: [],
    scalars: [['member', 'member', (m) => ({ ...seats, capacity: 5, member: m })]],
    numbers: [['capacity', 'capacity', (n) => ({ ...seats, capacity: n })]],
    filters: [['filter', (f) => ({ ...seats, capacity: 5, filter: f })]],
    session: true,
  },
  {
    name: 'removeFromSetWithCapacity',
    call: (o) => removeFromSetWithCapacity(coll(), o as never),
    valid: seats,
    paths: [
      ['array', (p) => ({ ...seats, array: p })],
      ['counter', (p) => ({ ...seats, counter: p })],
      opIdLog(seats),
    ],
    pathKeys: [],
    fieldKeys: [],
    scalars: [['member', 'member', (m) => ({ ...seats, member: m })]],
    numbers: [],
    filters: [['filter', (f) => ({ ...seats, filter: f })]],
    session: true,
  },
  {
    name: 'claimOnce',
    call: (o) => claimOnce(coll(), o as never),
    valid: claim,
    paths: [['field', (p) => ({ ...claim, field: p })], opIdLog(claim)],
    pathKeys: [['set', (key) => ({ ...claim, set: own([[key, 'x']]) })]],
    fieldKeys: [],
    scalars: [
      ['to', 'to', (s) => ({ ...claim, to: s })],
      ['from', 'from', (s) => ({ ...claim, from: s })],
      ['from.0', 'from', (s) => ({ ...claim, from: [s] })],
    ],
    numbers: [],
    filters: [
      ['filter', (f) => ({ ...claim, filter: f })],
      ['requires', (f) => ({ ...claim, requires: f })],
      ['set', (value) => ({ ...claim, set: { paidWith: value } })],
    ],
    session: true,
  },
  {
    name: 'guardedDecrement',
    call: (o) => guardedDecrement(coll(), o as never),
    valid: decrement,
    paths: [['field', (p) => ({ ...decrement, field: p })], opIdLog(decrement)],
    pathKeys: [],
    fieldKeys: [],
    scalars: [],
    numbers: [
      ['amount', 'amount', (n) => ({ ...decrement, amount: n })],
      ['floor', 'floor', (n) => ({ ...decrement, floor: n })],
    ],
    filters: [['filter', (f) => ({ ...decrement, filter: f })]],
    session: true,
  },
  {
    name: 'guardedDecrementAll',
    call: (o) => guardedDecrementAll(coll(), o as never),
    // `client` is set per row (t.client is only available inside tests).
    valid: { field: 'stock', items: [{ filter: { _id: 'a' }, amount: 1 }] },
    paths: [['field', (p) => ({ field: p, items: [{ filter: { _id: 'a' }, amount: 1 }] })]],
    pathKeys: [],
    fieldKeys: [],
    scalars: [],
    numbers: [
      [
        'items.0.amount',
        'items.0.amount',
        (n) => ({ field: 'stock', items: [{ filter: { _id: 'a' }, amount: n }] }),
      ],
    ],
    filters: [['items.0.filter', (f) => ({ field: 'stock', items: [{ filter: f, amount: 1 }] })]],
    session: true,
  },
  {
    name: 'incrementOrPushArrayItem',
    call: (o) => incrementOrPushArrayItem(coll(), o as never),
    valid: cart,
    paths: [['array', (p) => ({ ...cart, array: p })], opIdLog(cart)],
    pathKeys: [],
    fieldKeys: [
      ['match', (key) => ({ ...cart, match: own([[key, 'c1']]) })],
      ['inc', (key) => ({ ...cart, inc: own([[key, 1]]) })],
      ['fields', (key) => ({ ...cart, fields: own([[key, 'x']]) })],
      ['max', (key) => ({ ...cart, inc: { quantity: 1 }, max: own([[key, 5]]) })],
    ],
    scalars: [['match.courseId', 'match', (s) => ({ ...cart, match: { courseId: s } })]],
    numbers: [
      ['inc.quantity', 'inc', (n) => ({ ...cart, inc: { quantity: n } })],
      ['max.quantity', 'max', (n) => ({ ...cart, inc: { quantity: 1 }, max: { quantity: n } })],
    ],
    filters: [
      ['filter', (f) => ({ ...cart, filter: f })],
      ['fields', (value) => ({ ...cart, fields: { title: value } })],
    ],
    session: true,
  },
  {
    name: 'updateWithVersion',
    call: (o) => updateWithVersion(coll(), o as never),
    valid: versioned,
    paths: [['versionField', (p) => ({ ...versioned, versionField: p })], opIdLog(versioned)],
    pathKeys: [],
    fieldKeys: [],
    scalars: [],
    numbers: [['maxAttempts', 'maxAttempts', (n) => ({ ...versioned, maxAttempts: n })]],
    filters: [['filter', (f) => ({ ...versioned, filter: f })]],
    session: true,
  },
];

/**
 * The option an error about a bad key names: `inc.constructor` for a prototype name; the option
 * itself for a key holding a NUL byte, which the walk over the option's objects finds first.
 */
const keyOption = (option: string, key: string) =>
  key.includes('\0') ? option : `${option}.${key}`;

type Row = [label: string, primitive: string, call: () => Promise<unknown>, option: string];

function rowsOf(p: Primitive): Row[] {
  // guardedDecrementAll needs a client (or a session) to get past its mode check.
  const mode = (o: Record<string, unknown>) =>
    p.name === 'guardedDecrementAll' && o.session === undefined ? { ...o, client: t.client } : o;
  const row = (label: string, build: () => Record<string, unknown>, option: string): Row => [
    label,
    p.name,
    () => p.call(mode(build())),
    option,
  ];
  const rows: Row[] = [];
  for (const [option, build] of p.paths) {
    for (const path of BAD_PATHS) {
      rows.push(row(`${option} ${JSON.stringify(path)}`, () => build(path), option));
    }
  }
  for (const [option, build] of p.pathKeys) {
    for (const key of BAD_PATHS) {
      rows.push(
        row(`${option} key ${JSON.stringify(key)}`, () => build(key), keyOption(option, key)),
      );
    }
  }
  for (const [option, build] of p.fieldKeys) {
    for (const key of BAD_FIELD_NAMES) {
      rows.push(
        row(`${option} key ${JSON.stringify(key)}`, () => build(key), keyOption(option, key)),
      );
    }
  }
  for (const [option, fakeOption, build] of p.scalars) {
    for (const [label, value] of BAD_SCALARS) {
      // A list of states is what `from` takes.
      if (option === 'from' && label === 'an array') continue;
      rows.push(row(`${option} ${label}`, () => build(value()), option));
    }
    for (const [label, value] of FAKE_BSON) {
      rows.push(row(`${option} ${label}`, () => build(value()), fakeOption));
    }
  }
  for (const [option, fakeOption, build] of p.numbers) {
    for (const [label, value] of BAD_NUMBERS) {
      // A string capacity names the field holding it.
      if (option === 'capacity' && label === 'a numeric string') continue;
      rows.push(
        row(
          `${option} ${label}`,
          () => build(value()),
          label.includes('_bsontype') ? fakeOption : option,
        ),
      );
    }
  }
  for (const [option, build] of p.filters) {
    for (const [label, value] of BAD_FILTERS) {
      // `set`/`fields` take any value: only the structural problems apply to them.
      if (
        (option === 'set' || option === 'fields') &&
        (label === 'a string' || label === 'an array')
      )
        continue;
      rows.push(row(`${option} ${label}`, () => build(value()), option));
    }
  }
  if (p.session) {
    for (const [label, session] of BAD_SESSIONS) {
      rows.push(row(`session ${label}`, () => ({ ...p.valid, session: session() }), 'session'));
    }
  }
  return rows;
}

const fn = async () => 1;
const OTHER_ROWS: Row[] = [
  [
    'key NaN',
    'withIdempotencyKey',
    () => withIdempotencyKey(coll(), { key: Number.NaN, fn } as never),
    'key',
  ],
  [
    'key a fake ObjectId',
    'withIdempotencyKey',
    () => withIdempotencyKey(coll(), { key: fakeObjectId(), fn } as never),
    'key',
  ],
  [
    'fingerprint a fake ObjectId',
    'withIdempotencyKey',
    () => withIdempotencyKey(coll(), { key: 'k', fn, fingerprint: fakeObjectId() } as never),
    'fingerprint',
  ],
  [
    'leaseMs Double(NaN)',
    'withIdempotencyKey',
    () => withIdempotencyKey(coll(), { key: 'k', fn, leaseMs: new Double(Number.NaN) } as never),
    'leaseMs',
  ],
  [
    'wait.timeoutMs Infinity',
    'withIdempotencyKey',
    () =>
      withIdempotencyKey(coll(), {
        key: 'k',
        fn,
        wait: { timeoutMs: Number.POSITIVE_INFINITY },
      } as never),
    'wait.timeoutMs',
  ],
  [
    'transaction.transactionOptions cyclic',
    'withIdempotencyKey',
    () => {
      const readConcern: Record<string, unknown> = { level: 'snapshot' };
      readConcern.self = readConcern;
      return withIdempotencyKey(coll(), {
        key: 'k',
        fn,
        client: t.client,
        transaction: { transactionOptions: { readConcern } },
      } as never);
    },
    'transaction',
  ],
  [
    'collection a JSON object',
    'ensureIdempotencyIndexes',
    () => ensureIdempotencyIndexes(JSON.parse('{"collectionName":"keys","_bsontype":"x"}')),
    'collection',
  ],
  [
    'timeoutMs Double(NaN)',
    'withRetryingTransaction',
    () => withRetryingTransaction(t.client, fn, { timeoutMs: new Double(Number.NaN) } as never),
    'timeoutMs',
  ],
  [
    'maxAttempts NaN',
    'withRetryingTransaction',
    () => withRetryingTransaction(t.client, fn, { maxAttempts: Number.NaN }),
    'maxAttempts',
  ],
  [
    'transactionOptions.readConcern cyclic',
    'withRetryingTransaction',
    () => {
      const readConcern: Record<string, unknown> = { level: 'snapshot' };
      readConcern.self = readConcern;
      return withRetryingTransaction(t.client, fn, {
        transactionOptions: { readConcern } as never,
      });
    },
    'transactionOptions',
  ],
  [
    'transactionOptions.writeConcern 200 levels deep',
    'withRetryingTransaction',
    () =>
      withRetryingTransaction(t.client, fn, {
        transactionOptions: { writeConcern: deep(200) } as never,
      }),
    'transactionOptions',
  ],
];

const ROWS: Row[] = [...PRIMITIVES.flatMap(rowsOf), ...OTHER_ROWS];

describe('hostile input: InvalidArgumentError naming the option, no command sent, no pollution', () => {
  it('covers every public primitive', async () => {
    const index = await import('../src/index.js');
    const primitives = Object.entries(index)
      .filter(([name, value]) => typeof value === 'function' && !/^(is[A-Z]|[A-Z])/.test(name))
      .map(([name]) => name)
      .sort();
    expect([...new Set(ROWS.map(([, primitive]) => primitive))].sort()).toEqual(primitives);
  });

  const table = ROWS.map(
    ([label, primitive, call, option]) => [label, primitive, option, call] as const,
  );
  it.each(table)('%s (%s) → option %s', async (_label, primitive, option, call) => {
    t.commands.reset();
    const error = await rejectionOf(call());
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(isInvalidArgumentError(error)).toBe(true);
    expect(error).toMatchObject({ primitive, option });
    expect(t.commands.names()).toEqual([]);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_NAMES);
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });
});

describe('what stays accepted, and reads that never follow inherited properties', () => {
  // MongoDB stores "toString" as any other field name (the offline server too, see
  // tests/conformance/field-names.test.ts): a missing one is version 0, then 1 after the write.
  it('updateWithVersion with versionField "toString" reads a missing field as version 0, not Object.prototype.toString, and writes version 1', async () => {
    const versions = t.db.collection<Doc>(t.uniqueName('versions'));
    await versions.insertOne({ _id: 's1', a: 0 });
    t.commands.reset();
    let calls = 0;
    const result = await updateWithVersion(versions, {
      filter: { _id: 's1' },
      versionField: 'toString',
      update: () => {
        calls += 1;
        return { $inc: { a: 1 } };
      },
    });
    expect(result).toMatchObject({ outcome: 'updated', attempts: 1 });
    expect(calls).toBe(1);
    expect(t.commands.names()).toEqual(['find', 'findAndModify']);
    expect(await versions.findOne({ _id: 's1' })).toEqual({ _id: 's1', a: 1, toString: 1 });
  });

  it.each([
    ['$set __proto__', own([['__proto__', { isAdmin: true }]])],
    ['$set a.__proto__.isAdmin', { 'a.__proto__.isAdmin': true }],
    ['$set constructor', { constructor: 1 }],
    ['$set prototype.x', { 'prototype.x': 1 }],
    ['$set a NUL byte', { 'a\0b': 1 }],
    ['$set a cyclic value', { a: cyclic() }],
    ['$set a value 200 levels deep', { a: deep(200) }],
    ['$set a fake ObjectId', { a: fakeObjectId() }],
  ])(
    'updateWithVersion: a callback update with %s → option "update", only the read sent',
    async (_label, fields) => {
      const versions = t.db.collection<Doc>(t.uniqueName('versions'));
      await versions.insertOne({ _id: 's1', a: 0 } as never);
      t.commands.reset();
      const error = await rejectionOf(
        updateWithVersion(versions, { filter: { _id: 's1' }, update: () => ({ $set: fields }) }),
      );
      expect(error).toMatchObject({ name: 'InvalidArgumentError', option: 'update' });
      expect(t.commands.names()).toEqual(['find']);
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_NAMES);
    },
  );

  it.each([
    ['a Double', () => new Double(2.5)],
    ['a finite Decimal128 beyond the double range', () => Decimal128.fromString('1E+6000')],
    ['an ObjectId', () => new ObjectId()],
  ])(
    'claimOnce takes %s as its target state (real BSON values are still scalars)',
    async (_label, value) => {
      const orders = t.db.collection<Doc>(t.uniqueName('orders'));
      await orders.insertOne({ _id: 'o1', status: 'new' } as never);
      t.commands.reset();
      const result = await claimOnce(orders, {
        filter: { _id: 'o1' },
        field: 'status',
        to: value(),
      });
      expect(result.outcome).toBe('claimed');
      expect(t.commands.names()).toEqual(['findAndModify']);
    },
  );

  it("a session of the collection's own client is accepted", async () => {
    const orders = t.db.collection<Doc>(t.uniqueName('orders'));
    await orders.insertOne({ _id: 'o1', status: 'new' } as never);
    const session = t.client.startSession();
    try {
      const result = await claimOnce(orders, {
        filter: { _id: 'o1' },
        field: 'status',
        to: 'paid',
        session,
      });
      expect(result.outcome).toBe('claimed');
    } finally {
      await session.endSession();
    }
  });

  it('guardedDecrementAll with a client that does not own the collection: InvalidArgumentError on "client", nothing sent on either client', async () => {
    const products = t.db.collection<Doc>(t.uniqueName('products'));
    await products.insertOne({ _id: 'a', stock: 5 } as never);
    const seen: string[] = [];
    const onOther = (event: { commandName: string }) => seen.push(event.commandName);
    other.on('commandStarted', onOther);
    t.commands.reset();
    try {
      const error = await rejectionOf(
        guardedDecrementAll(products, {
          client: other,
          field: 'stock',
          items: [{ filter: { _id: 'a' }, amount: 1 }],
        }),
      );
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ primitive: 'guardedDecrementAll', option: 'client' });
      expect(t.commands.names()).toEqual([]);
      expect(seen.filter((name) => name !== 'hello' && name !== 'ping')).toEqual([]);
    } finally {
      other.off('commandStarted', onOther);
    }
    expect(await products.findOne({ _id: 'a' } as never)).toEqual({ _id: 'a', stock: 5 });
  });
});
