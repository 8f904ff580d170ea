/**
 * Direct tests of src/validate.ts, the argument checks every primitive runs before it sends a
 * command, written to kill the mutants the primitives' own tests leave alive (npm run mutation;
 * docs/reliability.md, "Mutation testing"). No database: the checks are pure, and fake driver
 * objects of the right shape stand in for clients, sessions and collections (the checks
 * recognise driver objects by shape, not `instanceof`).
 *
 * Every refusal is pinned by its `option` and its full message: callers (and the guides) rely
 * on the error naming the offending option, and a check that throws the wrong text, or throws a
 * bare TypeError instead of InvalidArgumentError, is a regression.
 */
import type { ClientSession, Collection, MongoClient } from 'mongodb';
import {
  Binary,
  BSONRegExp,
  Code,
  Decimal128,
  Double,
  Int32,
  Long,
  MinKey,
  ObjectId,
  Timestamp,
  UUID,
} from 'mongodb';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  describe as describeValue,
  isPlainObject,
  isScalar,
  MAX_NAME_LENGTH,
  validator,
} from '../../src/validate.js';

const PRIMITIVE = 'guardedDecrement';
const v = validator(PRIMITIVE);

/** The InvalidArgumentError `run` throws; fails the test if it throws nothing or anything else. */
function refusal(run: () => unknown): InvalidArgumentError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return error as InvalidArgumentError;
  }
  throw new Error('expected an InvalidArgumentError, but nothing was thrown');
}

/** Asserts the refusal names `option` and says exactly `problem`. */
function expectRefused(run: () => unknown, option: string, problem: string): void {
  const error = refusal(run);
  expect(error.primitive).toBe(PRIMITIVE);
  expect(error.option).toBe(option);
  expect(error.message).toBe(`${PRIMITIVE}: option "${option}" ${problem}`);
}

/** `n` plain objects nested in each other (`{ a: { a: … { leaf: 1 } } }`): depth n. */
function nest(n: number): Record<string, unknown> {
  let inner: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < n; i++) inner = { a: inner };
  return inner;
}

/** `n` arrays nested in each other (`[[…[1]]]`): depth n. */
function nestArrays(n: number): unknown[] {
  let inner: unknown[] = [1];
  for (let i = 1; i < n; i++) inner = [inner];
  return inner;
}

/** An object whose prototype has no `constructor` (so its class cannot be named). */
function classless(): object {
  return Object.create(Object.create(null)) as object;
}

const fn = () => 1;
const NOT_BSON =
  "which is not a BSON value (use plain objects, arrays, Dates and the driver's BSON classes)";
const DROPPED = 'which is not a BSON value (the driver would drop or mangle it)';
const BSONTYPE = "which is not a BSON value (build BSON values with the driver's classes)";
const SCALAR_PROBLEM =
  "must be a string, finite number, boolean, Date, ObjectId, Decimal128, Long or UUID/Binary (finite, built with the driver's classes), got";

describe('MAX_NAME_LENGTH', () => {
  it('is 1024', () => {
    expect(MAX_NAME_LENGTH).toBe(1024);
  });
});

describe('describe', () => {
  it.each<[string, unknown, string]>([
    ['null', null, 'null'],
    ['an empty array', [], 'an array'],
    ['an array', [1, 2], 'an array'],
    ['a valid Date', new Date(0), 'a Date'],
    ['an invalid Date', new Date(Number.NaN), 'an invalid Date'],
    ['a finite Double', new Double(1.5), 'a Double'],
    ['a Double NaN', new Double(Number.NaN), 'a Double (NaN)'],
    ['a Double Infinity', new Double(Number.POSITIVE_INFINITY), 'a Double (Infinity)'],
    ['a Double -Infinity', new Double(Number.NEGATIVE_INFINITY), 'a Double (-Infinity)'],
    ['a Decimal128 NaN', Decimal128.fromString('NaN'), 'a Decimal128 (NaN)'],
    ['a Decimal128 Infinity', Decimal128.fromString('Infinity'), 'a Decimal128 (Infinity)'],
    ['a Decimal128 -Infinity', Decimal128.fromString('-Infinity'), 'a Decimal128 (-Infinity)'],
    // finite, though converting it to a double would give Infinity
    ['a Decimal128 1E+6000', Decimal128.fromString('1E+6000'), 'a Decimal128'],
    ['a negative Decimal128', Decimal128.fromString('-1.5'), 'a Decimal128'],
    ['a Long', Long.fromNumber(3), 'a Long'],
    ['an Int32', new Int32(3), 'a Int32'],
    ['an ObjectId', new ObjectId(), 'a ObjectId'],
    // a Binary's text is its bytes: "NaN" here must not read as a non-finite number
    ['a Binary whose text is NaN', new Binary(Buffer.from('NaN')), 'a Binary'],
    ['a UUID', new UUID(), 'a Binary'],
    ['a Timestamp', new Timestamp({ t: 1, i: 1 }), 'a Timestamp'],
    ['a number', 5, '5'],
    ['a fraction', 1.5, '1.5'],
    ['negative zero', -0, '0'],
    ['NaN', Number.NaN, 'NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 'Infinity'],
    ['a string', 'x', 'the string "x"'],
    ['the empty string', '', 'the string ""'],
    ['a string with a quote', 'a"b', 'the string "a\\"b"'],
    ['a plain object', {}, 'an object'],
    ['a null-prototype object', Object.create(null), 'an object'],
    ['a Map', new Map(), 'an object'],
    ['a plain object posing as BSON', { _bsontype: 'ObjectId', id: 'x' }, 'an object'],
    ['a function', fn, 'a function'],
    ['a symbol', Symbol('s'), 'a symbol'],
    ['a bigint', 10n, 'a bigint'],
    ['undefined', undefined, 'a undefined'],
    ['a boolean', true, 'a boolean'],
  ])('describes %s', (_name, value, expected) => {
    expect(describeValue(value)).toBe(expected);
  });
});

describe('isPlainObject', () => {
  class Instance {
    a = 1;
  }
  const nullProtoArray = Object.setPrototypeOf([1], null) as unknown;

  it.each<[string, unknown, boolean]>([
    ['an object literal', { a: 1 }, true],
    ['a parsed JSON body', JSON.parse('{"a":1}'), true],
    ['a null-prototype object', Object.create(null), true],
    ['an array', [], false],
    // Array.isArray, not the prototype, refuses this one
    ['an array without a prototype', nullProtoArray, false],
    ['a class instance', new Instance(), false],
    ['a Map', new Map(), false],
    ['a Date', new Date(0), false],
    ['an ObjectId', new ObjectId(), false],
    ['an object inheriting from a plain object', Object.create({}), false],
    ['null', null, false],
    ['undefined', undefined, false],
    ['a string', 'x', false],
    ['a number', 5, false],
    ['a function', fn, false],
  ])('isPlainObject of %s', (_name, value, expected) => {
    expect(isPlainObject(value)).toBe(expected);
  });
});

describe('isScalar', () => {
  it.each<[string, unknown]>([
    ['a string', 'x'],
    ['the empty string', ''],
    ['true', true],
    ['false', false],
    ['zero', 0],
    ['a negative fraction', -1.5],
    ['a valid Date', new Date(0)],
    ['an ObjectId', new ObjectId()],
    ['a finite Decimal128', Decimal128.fromString('1.5')],
    ['a finite Decimal128 beyond the double range', Decimal128.fromString('1E+6000')],
    ['a Binary', new Binary(Buffer.from('x'))],
    ['a Binary whose text is NaN', new Binary(Buffer.from('NaN'))],
    ['a UUID', new UUID()],
    ['a Long', Long.fromNumber(3)],
    ['an Int32', new Int32(3)],
    ['a finite Double', new Double(1.5)],
  ])('%s is a scalar', (_name, value) => {
    expect(isScalar(value)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['an invalid Date', new Date(Number.NaN)],
    ['a Double NaN', new Double(Number.NaN)],
    ['a Double Infinity', new Double(Number.POSITIVE_INFINITY)],
    ['a Double -Infinity', new Double(Number.NEGATIVE_INFINITY)],
    ['a Decimal128 NaN', Decimal128.fromString('NaN')],
    ['a Decimal128 Infinity', Decimal128.fromString('Infinity')],
    ['a Decimal128 -Infinity', Decimal128.fromString('-Infinity')],
    ['a Timestamp', new Timestamp({ t: 1, i: 1 })],
    ['a MinKey', new MinKey()],
    ['a Code', new Code('x')],
    ['a BSONRegExp', new BSONRegExp('a')],
    ['null', null],
    ['undefined', undefined],
    ['a plain object', {}],
    ['a plain object posing as an ObjectId', { _bsontype: 'ObjectId', id: 'x' }],
    ['an array', ['x']],
    ['a symbol', Symbol('s')],
    ['a function', fn],
    ['a bigint', 10n],
  ])('%s is not a scalar', (_name, value) => {
    expect(isScalar(value)).toBe(false);
  });
});

describe('fail', () => {
  it('throws an InvalidArgumentError naming the primitive and the option', () => {
    const error = refusal(() => v.fail('amount', 'is wrong'));
    expect(error.name).toBe('InvalidArgumentError');
    expect(error.primitive).toBe('guardedDecrement');
    expect(error.option).toBe('amount');
    expect(error.message).toBe('guardedDecrement: option "amount" is wrong');
  });

  it('uses the name the validator was made for', () => {
    const error = refusal(() => validator('claimOnce').fail('to', 'is wrong'));
    expect(error.message).toBe('claimOnce: option "to" is wrong');
    expect(error.primitive).toBe('claimOnce');
  });
});

describe('options', () => {
  it('returns the options object itself', () => {
    const options = { amount: 1, onRetry: fn, at: new Date(0), nan: new Double(Number.NaN) };
    expect(v.options(options)).toBe(options);
    const bare = Object.create(null) as object;
    expect(v.options(bare)).toBe(bare);
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'null'],
    ['undefined', undefined, 'a undefined'],
    ['an array', [], 'an array'],
    ['a string', 'x', 'the string "x"'],
    ['a class instance', new Map(), 'an object'],
  ])('refuses %s as the options object', (_name, value, described) => {
    expectRefused(() => v.options(value), 'options', `must be an object, got ${described}`);
  });

  it('does not check BSON leaves (functions are options: hooks)', () => {
    expect(v.options({ hooks: { onRetry: fn }, list: [fn, Symbol('s')] })).toBeDefined();
  });

  it('does not walk class instances: a session refers to itself through its client', () => {
    class Looped {
      self: unknown = this;
    }
    expect(() => v.options({ session: new Looped() })).not.toThrow();
  });

  it('names a cycle where it closes', () => {
    const looped: Record<string, unknown> = { x: 1 };
    looped.self = looped;
    expectRefused(
      () => v.options({ level: looped }),
      'level.self',
      'is cyclic (level.self refers back to an enclosing object): pass a tree of plain values, without the back-reference',
    );
    const list: unknown[] = [1];
    list.push(list);
    expectRefused(
      () => v.options({ items: list }),
      'items.1',
      'is cyclic (items.1 refers back to an enclosing object): pass a tree of plain values, without the back-reference',
    );
  });

  it('accepts the same object twice side by side: shared, not cyclic', () => {
    const shared = { v: 1 };
    expect(() => v.options({ x: { a: shared, b: shared }, y: [shared, shared] })).not.toThrow();
    const sharedList = [1];
    expect(() => v.options({ x: { a: sharedList, b: { c: sharedList } } })).not.toThrow();
  });

  it('accepts 100 nested objects and refuses 101 (the root value is level 1)', () => {
    // the innermost object holds a scalar at level 101: only objects and arrays count
    expect(() => v.options({ deep: nest(100) })).not.toThrow();
    const at = `deep${'.a'.repeat(100)}`;
    expectRefused(
      () => v.options({ deep: nest(101) }),
      at,
      `nests deeper than 100 levels (at ${at}), more than MongoDB stores: flatten it`,
    );
  });

  it('counts arrays as levels too', () => {
    expect(() => v.options({ deep: nestArrays(100) })).not.toThrow();
    const at = `deep${'.0'.repeat(100)}`;
    expectRefused(
      () => v.options({ deep: nestArrays(101) }),
      at,
      `nests deeper than 100 levels (at ${at}), more than MongoDB stores: flatten it`,
    );
  });

  it('refuses a plain object carrying a _bsontype key, named down to the element', () => {
    expectRefused(
      () => v.options({ items: [{ filter: { _id: { _bsontype: 'ObjectId', id: 'x' } } }] }),
      'items.0.filter._id',
      `holds a plain object with a "_bsontype" key at items.0.filter._id, ${BSONTYPE}`,
    );
    const bare = Object.assign(Object.create(null) as object, { _bsontype: 'Long' });
    expectRefused(
      () => v.options({ id: bare }),
      'id',
      `holds a plain object with a "_bsontype" key at id, ${BSONTYPE}`,
    );
    const parsed: unknown = JSON.parse('{"match":{"_bsontype":"ObjectId","id":"x"}}');
    expectRefused(
      () => v.options(parsed),
      'match',
      `holds a plain object with a "_bsontype" key at match, ${BSONTYPE}`,
    );
  });

  it('accepts an array with a _bsontype property and an inherited _bsontype', () => {
    const list = Object.assign([1], { _bsontype: 'ObjectId' });
    expect(() => v.options({ list })).not.toThrow();
    expect(() => v.options({ x: Object.create({ _bsontype: 'ObjectId' }) })).not.toThrow();
  });

  it('checks every key, not only the first', () => {
    expectRefused(
      () => v.options({ ok: 1, level: { fine: 2, bad: { _bsontype: 'x' } } }),
      'level.bad',
      `holds a plain object with a "_bsontype" key at level.bad, ${BSONTYPE}`,
    );
  });

  it('refuses a NUL byte in a key, naming the object that holds it', () => {
    expectRefused(
      () => v.options({ filter: { 'a\0b': 1 } }),
      'filter',
      'has a field name with a NUL byte at filter: remove it (MongoDB field names cannot hold one)',
    );
    expectRefused(
      () => v.options({ filter: { x: 1, nested: { 'a\0': 1 } } }),
      'filter.nested',
      'has a field name with a NUL byte at filter.nested: remove it (MongoDB field names cannot hold one)',
    );
  });
});

describe('collection', () => {
  const collection = { collectionName: 'c', findOneAndUpdate() {} };
  const asCollection = (value: unknown) => value as Collection;

  it('returns a collection-shaped object', () => {
    expect(v.collection(asCollection(collection))).toBe(collection);
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'null'],
    ['undefined', undefined, 'a undefined'],
    ['a string', 'orders', 'the string "orders"'],
    ['a non-string collectionName', { collectionName: 5, findOneAndUpdate() {} }, 'an object'],
    ['no findOneAndUpdate', { collectionName: 'c' }, 'an object'],
    [
      'a findOneAndUpdate that is no function',
      { collectionName: 'c', findOneAndUpdate: 1 },
      'an object',
    ],
    [
      'a function with the right properties',
      Object.assign(() => 1, { collectionName: 'c', findOneAndUpdate() {} }),
      'a function',
    ],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(
      () => v.collection(asCollection(value)),
      'collection',
      `must be a driver Collection (db.collection(name)), got ${described}`,
    );
  });

  it('names a custom option', () => {
    expectRefused(
      () => v.collection(asCollection(null), 'source'),
      'source',
      'must be a driver Collection (db.collection(name)), got null',
    );
  });
});

describe('client', () => {
  const client = { startSession() {} };
  const other = { startSession() {} };
  const asClient = (value: unknown) => value as MongoClient;
  const OTHER_CLIENT =
    'is not the MongoClient that owns the collection: pass the client the collection was obtained from';

  it('returns a client-shaped object, with no collection to compare against', () => {
    expect(v.client(asClient(client))).toBe(client);
    expect(v.client(asClient(client), 'client', undefined)).toBe(client);
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'null'],
    ['undefined', undefined, 'a undefined'],
    ['an object without startSession', {}, 'an object'],
    ['a startSession that is no function', { startSession: true }, 'an object'],
    ['a function with startSession', Object.assign(() => 1, { startSession() {} }), 'a function'],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(
      () => v.client(asClient(value)),
      'client',
      `must be a connected MongoClient, got ${described}`,
    );
  });

  it('names a custom option', () => {
    expectRefused(
      () => v.client(asClient('x'), 'mongo'),
      'mongo',
      'must be a connected MongoClient, got the string "x"',
    );
  });

  it.each<[string, object]>([
    ['its own client', { client }],
    ['its Db client', { db: { client } }],
    ['a null client, then its Db client', { client: null, db: { client } }],
  ])('accepts the client that owns the collection: %s', (_name, collection) => {
    expect(v.client(asClient(client), 'client', collection)).toBe(client);
  });

  it.each<[string, object]>([
    ['another client', { client: other }],
    ['another Db client', { db: { client: other } }],
    ['its own client before its Db client', { client: other, db: { client } }],
    ['a null client, then another Db client', { client: null, db: { client: other } }],
    ['a string client, then another Db client', { client: 'x', db: { client: other } }],
  ])('refuses a client that does not own the collection: %s', (_name, collection) => {
    expectRefused(() => v.client(asClient(client), 'client', collection), 'client', OTHER_CLIENT);
  });

  it.each<[string, object]>([
    ['no client and no Db', {}],
    ['a null client', { client: null }],
    ['a string client', { client: 'x' }],
    ['a Db without client', { db: {} }],
    ['a null Db client', { db: { client: null } }],
    ['a string Db client', { db: { client: 'x' } }],
  ])('skips the ownership check when the collection does not say: %s', (_name, collection) => {
    expect(v.client(asClient(client), 'client', collection)).toBe(client);
  });
});

describe('session', () => {
  const client = { startSession() {} };
  const other = { startSession() {} };
  const collection = { collectionName: 'c', findOneAndUpdate() {}, client };
  const session = { inTransaction: () => false, endSession() {}, client, hasEnded: false };
  const asSession = (value: unknown) => value as ClientSession;
  const NOT_A_SESSION = 'must be a ClientSession (client.startSession()), got';
  const LOOK_ALIKE = 'must be a ClientSession started by client.startSession(), not a look-alike';
  const OTHER_CLIENT =
    'belongs to another MongoClient than the collection: start it from the client the collection was obtained from';

  it('passes no session through as undefined', () => {
    expect(v.session(undefined, collection)).toBeUndefined();
  });

  it('returns a live session of the collection’s client', () => {
    expect(v.session(asSession(session), collection)).toBe(session);
    expect(v.session(asSession(session), { db: { client } })).toBe(session);
    const { hasEnded: _, ...noFlag } = session;
    expect(v.session(asSession(noFlag), collection)).toBe(noFlag);
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'null'],
    ['a string', 'x', 'the string "x"'],
    ['no inTransaction', { endSession() {}, client }, 'an object'],
    ['no endSession', { inTransaction: () => false, client }, 'an object'],
    [
      'an endSession that is no function',
      { inTransaction: () => false, endSession: 1, client },
      'an object',
    ],
    [
      'a function with the right properties',
      Object.assign(() => 1, { inTransaction: () => false, endSession() {}, client }),
      'a function',
    ],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(
      () => v.session(asSession(value), collection),
      'session',
      `${NOT_A_SESSION} ${described}`,
    );
  });

  it.each<[string, unknown]>([
    ['no client', undefined],
    ['a null client', null],
    ['a string client', 'x'],
    ['a client without startSession', {}],
    ['a function client', Object.assign(() => 1, { startSession() {} })],
  ])('refuses a look-alike with %s', (_name, owner) => {
    const lookAlike = { inTransaction: () => false, endSession() {}, client: owner };
    // a collection that does not name its client: only the session itself is judged
    expectRefused(() => v.session(asSession(lookAlike), {}), 'session', LOOK_ALIKE);
  });

  it.each<[string, object]>([
    ['another client', { client: other }],
    ['another Db client', { db: { client: other } }],
  ])('refuses a session of %s than the collection’s', (_name, coll) => {
    expectRefused(() => v.session(asSession(session), coll), 'session', OTHER_CLIENT);
  });

  it('accepts any genuine session when the collection does not name its client', () => {
    const foreign = { ...session, client: other };
    expect(v.session(asSession(foreign), {})).toBe(foreign);
    expect(v.session(asSession(foreign), { client: null, db: { client: null } })).toBe(foreign);
  });

  it('refuses an ended session', () => {
    expectRefused(
      () => v.session(asSession({ ...session, hasEnded: true }), collection),
      'session',
      'is a session that has already ended: start a new one with client.startSession()',
    );
  });

  it('names a custom option', () => {
    expectRefused(
      () => v.session(asSession({ ...session, hasEnded: true }), collection, 'opts.session'),
      'opts.session',
      'is a session that has already ended: start a new one with client.startSession()',
    );
  });
});

describe('filter', () => {
  it('returns a valid filter itself', () => {
    const filter = {
      _id: new ObjectId(),
      n: null,
      u: undefined,
      count: 3,
      name: 'x',
      flag: false,
      nested: { deep: [1, { a: 2 }] },
      at: new Date(0),
      pattern: /a/,
      bytes: Buffer.from('a'),
      typed: new Uint8Array(2),
      view: new DataView(new ArrayBuffer(2)),
      price: Decimal128.fromString('1.5'),
      // a BSON NaN is a BSON value: the filter check is about serialising, not about finiteness
      nan: new Double(Number.NaN),
      long: Long.fromNumber(3),
      uuid: new UUID(),
      ts: new Timestamp({ t: 1, i: 1 }),
    };
    expect(v.filter(filter)).toBe(filter);
    const bare = Object.assign(Object.create(null) as object, { a: 1 });
    expect(v.filter(bare)).toBe(bare);
  });

  it.each<[string, unknown, string]>([
    ['a string', 'x', 'the string "x"'],
    ['null', null, 'null'],
    ['undefined', undefined, 'a undefined'],
    ['an array', [{ a: 1 }], 'an array'],
    ['a Map', new Map([['a', 1]]), 'an object'],
    ['an ObjectId', new ObjectId(), 'a ObjectId'],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(
      () => v.filter(value),
      'filter',
      `must be a query filter object, got ${described}`,
    );
  });

  it('refuses an empty filter, under the option name given', () => {
    expectRefused(
      () => v.filter({}),
      'filter',
      'must not be empty: it selects the document to change',
    );
    expectRefused(
      () => v.filter(Object.create(null), 'requires'),
      'requires',
      'must not be empty: it selects the document to change',
    );
    expectRefused(
      () => v.filter(5, 'requires'),
      'requires',
      'must be a query filter object, got 5',
    );
  });

  class Session {
    id = 1;
  }

  it.each<[string, unknown, string, string]>([
    ['a function', fn, 'filter.x', `holds a function at filter.x, ${DROPPED}`],
    ['a symbol', Symbol('s'), 'filter.x', `holds a symbol at filter.x, ${DROPPED}`],
    [
      'an invalid Date',
      new Date(Number.NaN),
      'filter.x',
      'holds an invalid Date at filter.x (the driver would store it as 1970-01-01)',
    ],
    ['a Map', new Map(), 'filter.x', `holds an object of class Map at filter.x, ${NOT_BSON}`],
    [
      'a class instance',
      new Session(),
      'filter.x',
      `holds an object of class Session at filter.x, ${NOT_BSON}`,
    ],
    [
      'an ArrayBuffer (not a view)',
      new ArrayBuffer(2),
      'filter.x',
      `holds an object of class ArrayBuffer at filter.x, ${NOT_BSON}`,
    ],
    [
      'a classless object',
      classless(),
      'filter.x',
      `holds an object of class unknown at filter.x, ${NOT_BSON}`,
    ],
    [
      'an object inheriting _bsontype',
      Object.create({ _bsontype: 'ObjectId' }),
      'filter.x',
      `holds an object of class Object at filter.x, ${NOT_BSON}`,
    ],
    [
      'a plain object posing as BSON',
      { _bsontype: 'ObjectId', id: 'x' },
      'filter.x',
      `holds a plain object with a "_bsontype" key at filter.x, ${BSONTYPE}`,
    ],
  ])('refuses %s as a leaf, naming where it lies', (_name, leaf, option, problem) => {
    expectRefused(() => v.filter({ ok: 1, x: leaf }), option, problem);
  });

  it('looks inside arrays and nested objects', () => {
    expectRefused(
      () => v.filter({ x: [1, fn] }),
      'filter.x.1',
      `holds a function at filter.x.1, ${DROPPED}`,
    );
    expectRefused(
      () => v.filter({ a: { b: new Map() } }, 'requires'),
      'requires.a.b',
      `holds an object of class Map at requires.a.b, ${NOT_BSON}`,
    );
  });

  it('accepts 100 levels and refuses 101, the filter itself being level 1', () => {
    expect(() => v.filter(nest(100))).not.toThrow();
    const at = `filter${'.a'.repeat(100)}`;
    expectRefused(
      () => v.filter(nest(101)),
      at,
      `nests deeper than 100 levels (at ${at}), more than MongoDB stores: flatten it`,
    );
  });

  it('refuses a cycle and a NUL byte', () => {
    const looped: Record<string, unknown> = { a: 1 };
    looped.b = { back: looped };
    expectRefused(
      () => v.filter(looped),
      'filter.b.back',
      'is cyclic (filter.b.back refers back to an enclosing object): pass a tree of plain values, without the back-reference',
    );
    expectRefused(
      () => v.filter({ 'a\0': 1 }),
      'filter',
      'has a field name with a NUL byte at filter: remove it (MongoDB field names cannot hold one)',
    );
  });
});

describe('fields', () => {
  it('returns the object, empty or not, and does not check BSON leaves', () => {
    const fields = { f: fn, s: Symbol('s'), d: new Date(Number.NaN), m: new Map() };
    expect(v.fields(fields, 'fields')).toBe(fields);
    const empty = {};
    expect(v.fields(empty, 'fields')).toBe(empty);
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'null'],
    ['an array', [], 'an array'],
    ['a number', 5, '5'],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(
      () => v.fields(value, 'level'),
      'level',
      `must be an object of fields, got ${described}`,
    );
  });

  it('refuses a structure problem where it lies', () => {
    const looped: Record<string, unknown> = {};
    looped.self = looped;
    expectRefused(
      () => v.fields({ a: looped }, 'level'),
      'level.a.self',
      'is cyclic (level.a.self refers back to an enclosing object): pass a tree of plain values, without the back-reference',
    );
  });
});

describe('storedFields', () => {
  const PROTO = (name: string) =>
    `must not use the field name "${name}", which names a JavaScript prototype: "${name}"`;

  it('returns the fields; keys starting with $ are data', () => {
    const fields = {
      a: { $inc: 1 },
      b: [1, { $set: 2 }],
      c: null,
      __proto__x: { constructorx: 1 },
    };
    expect(v.storedFields(fields, 'set')).toBe(fields);
  });

  it('refuses a non-object as fields does', () => {
    expectRefused(
      () => v.storedFields(null, 'set'),
      'set',
      'must be an object of fields, got null',
    );
  });

  it('refuses a leaf that is no BSON value', () => {
    expectRefused(
      () => v.storedFields({ f: fn }, 'set'),
      'set.f',
      `holds a function at set.f, ${DROPPED}`,
    );
    expectRefused(
      () => v.storedFields({ a: { d: new Date(Number.NaN) } }, 'fields'),
      'fields.a.d',
      'holds an invalid Date at fields.a.d (the driver would store it as 1970-01-01)',
    );
  });

  it('refuses a nested prototype key, with the path that reaches it', () => {
    const parsed: unknown = JSON.parse('{"a":{"__proto__":{"x":1}}}');
    expectRefused(() => v.storedFields(parsed, 'set'), 'set.a.__proto__', PROTO('__proto__'));
    expectRefused(
      () => v.storedFields({ a: { b: { constructor: 1 } } }, 'fields'),
      'fields.a.b.constructor',
      PROTO('constructor'),
    );
  });

  it('checks the keys of objects inside arrays, not the keys of the arrays', () => {
    expectRefused(
      () => v.storedFields({ a: [1, { prototype: 1 }] }, 'set'),
      'set.a.1.prototype',
      PROTO('prototype'),
    );
    const list = Object.assign([1, 2], { constructor: 1 });
    expect(() => v.storedFields({ a: list }, 'set')).not.toThrow();
  });

  it('does not look inside BSON values, whatever keys they carry', () => {
    const binary = new Binary(Buffer.from('x'));
    Object.defineProperty(binary, 'constructor', { value: 1, enumerable: true });
    expect(() => v.storedFields({ a: { b: binary } }, 'set')).not.toThrow();
  });

  it('leaves its own top-level keys to the caller (claimOnce and incrementOrPush check them)', () => {
    expect(() => v.storedFields({ constructor: 1 }, 'set')).not.toThrow();
  });
});

describe('serialisable', () => {
  it('returns a sendable value as it is', () => {
    const update = { $set: { a: 1, at: new Date(0) } };
    expect(v.serialisable(update, 'update')).toBe(update);
    expect(v.serialisable(5, 'update')).toBe(5);
    expect(v.serialisable(null, 'update')).toBeNull();
  });

  it('names the option, with the place inside it in the message', () => {
    expectRefused(
      () => v.serialisable({ $set: { a: fn } }, 'update'),
      'update',
      `holds a function at update.$set.a, ${DROPPED}`,
    );
    expectRefused(
      () => v.serialisable(fn, 'update'),
      'update',
      `holds a function at update, ${DROPPED}`,
    );
    const looped: Record<string, unknown> = {};
    looped.x = looped;
    expectRefused(
      () => v.serialisable(looped, 'update'),
      'update',
      'is cyclic (update.x refers back to an enclosing object): pass a tree of plain values, without the back-reference',
    );
  });
});

describe('path', () => {
  it('returns a valid path', () => {
    expect(v.path('stock', 'field')).toBe('stock');
    expect(v.path('data.cart', 'field')).toBe('data.cart');
    expect(v.path('a$b.c$', 'field')).toBe('a$b.c$');
    expect(v.path('__proto__x', 'field')).toBe('__proto__x');
  });

  it.each<[string, unknown, string]>([
    ['a number', 5, '5'],
    ['the empty string', '', 'the string ""'],
    ['undefined', undefined, 'a undefined'],
    ['an array', ['a'], 'an array'],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(
      () => v.path(value, 'field'),
      'field',
      `must be a non-empty field path string, got ${described}`,
    );
  });

  it('accepts 1024 characters and refuses 1025', () => {
    const longest = `${'a'.repeat(500)}.${'b'.repeat(523)}`;
    expect(longest).toHaveLength(1024);
    expect(v.path(longest, 'field')).toBe(longest);
    expectRefused(
      () => v.path(`${longest}c`, 'field'),
      'field',
      'must be at most 1024 characters, got 1025',
    );
  });

  it.each(['a..b', '.a', 'a.'])('refuses the empty segment in %j', (path) => {
    expectRefused(
      () => v.path(path, 'field'),
      'field',
      `has an empty segment: ${JSON.stringify(path)}: remove the extra "."`,
    );
  });

  it.each(['$set', 'items.$', 'a.$[]', 'a.$[x].b'])('refuses the $ segment in %j', (path) => {
    expectRefused(
      () => v.path(path, 'field'),
      'field',
      `must not contain operators or positional segments: ${JSON.stringify(path)}`,
    );
  });

  it('refuses what safeSegments refuses', () => {
    expectRefused(
      () => v.path('a.__proto__.b', 'inc.x'),
      'inc.x',
      'must not use the field name "__proto__", which names a JavaScript prototype: "a.__proto__.b"',
    );
    expectRefused(
      () => v.path('a\0b', 'field'),
      'field',
      'must not contain a NUL byte: "a\\u0000b"',
    );
  });
});

describe('safeSegments', () => {
  it('returns a safe path', () => {
    for (const path of [
      'a',
      'a.b',
      '__proto__x',
      'x__proto__',
      'constructors',
      'a.prototypeX',
      '$x',
    ]) {
      expect(v.safeSegments(path, 'field')).toBe(path);
    }
  });

  it('refuses a NUL byte anywhere', () => {
    expectRefused(
      () => v.safeSegments('a\0', 'field'),
      'field',
      'must not contain a NUL byte: "a\\u0000"',
    );
    expectRefused(
      () => v.safeSegments('\0', 'field'),
      'field',
      'must not contain a NUL byte: "\\u0000"',
    );
  });

  it.each(['__proto__', 'constructor', 'prototype'])('refuses %s as any segment', (name) => {
    for (const path of [name, `${name}.a`, `a.${name}.b`, `a.${name}`]) {
      expectRefused(
        () => v.safeSegments(path, 'field'),
        'field',
        `must not use the field name "${name}", which names a JavaScript prototype: ${JSON.stringify(path)}`,
      );
    }
  });
});

describe('writablePath', () => {
  it.each(['_idx', 'x._id', 'a._id.b', 'id'])('accepts %j', (path) => {
    expect(v.writablePath(path, 'field')).toBe(path);
  });

  it.each(['_id', '_id.x', '_id.x.y'])('refuses %j', (path) => {
    expectRefused(
      () => v.writablePath(path, 'field'),
      'field',
      'must not be _id, which MongoDB does not let an update change',
    );
  });

  it('checks the path first', () => {
    expectRefused(
      () => v.writablePath('', 'field'),
      'field',
      'must be a non-empty field path string, got the string ""',
    );
  });
});

describe('fieldName', () => {
  const PLAIN = 'must be a plain field name (no ".", no leading "$")';

  it.each(['a', 'a$', 'a$b', '__proto__x', 'x'.repeat(1024)])('accepts %j', (name) => {
    expect(v.fieldName(name, 'match.x')).toBe(name);
  });

  it.each(['', 'a.b', '.', '$a', '$'])('refuses %j', (name) => {
    expectRefused(() => v.fieldName(name, 'match.x'), 'match.x', PLAIN);
  });

  it('refuses 1025 characters', () => {
    expectRefused(
      () => v.fieldName('x'.repeat(1025), 'inc.x'),
      'inc.x',
      'must be at most 1024 characters, got 1025',
    );
  });

  it('refuses what safeSegments refuses', () => {
    expectRefused(
      () => v.fieldName('constructor', 'inc.constructor'),
      'inc.constructor',
      'must not use the field name "constructor", which names a JavaScript prototype: "constructor"',
    );
    expectRefused(
      () => v.fieldName('a\0', 'inc.a'),
      'inc.a',
      'must not contain a NUL byte: "a\\u0000"',
    );
  });
});

describe('scalar', () => {
  it.each<[string, unknown]>([
    ['a string of 1024 characters', 'x'.repeat(1024)],
    ['the empty string', ''],
    ['a number', -1.5],
    ['zero', 0],
    ['a boolean', false],
    ['a Date', new Date(0)],
    ['an ObjectId', new ObjectId()],
    ['a Decimal128 beyond the double range', Decimal128.fromString('1E+6000')],
    ['a Long', Long.fromNumber(3)],
    ['an Int32', new Int32(3)],
    ['a Double', new Double(1.5)],
    ['a Binary', new Binary(Buffer.from('x'))],
    ['a UUID', new UUID()],
  ])('returns %s', (_name, value) => {
    expect(v.scalar(value, 'to')).toBe(value);
  });

  it('refuses a string of 1025 characters', () => {
    expectRefused(
      () => v.scalar('x'.repeat(1025), 'to'),
      'to',
      'must be at most 1024 characters, got 1025',
    );
  });

  it.each<[string, unknown, string]>([
    ['NaN', Number.NaN, 'NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 'Infinity'],
    ['an invalid Date', new Date(Number.NaN), 'an invalid Date'],
    ['a Double NaN', new Double(Number.NaN), 'a Double (NaN)'],
    ['a Decimal128 -Infinity', Decimal128.fromString('-Infinity'), 'a Decimal128 (-Infinity)'],
    ['a Timestamp', new Timestamp({ t: 1, i: 1 }), 'a Timestamp'],
    ['null', null, 'null'],
    ['undefined', undefined, 'a undefined'],
    ['a plain object posing as an ObjectId', { _bsontype: 'ObjectId', id: 'x' }, 'an object'],
    // longer than a name: still refused as an array, not measured like a string
    ['a long array', new Array(2000).fill('x'), 'an array'],
    ['a symbol', Symbol('s'), 'a symbol'],
    ['a bigint', 10n, 'a bigint'],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(() => v.scalar(value, 'to'), 'to', `${SCALAR_PROBLEM} ${described}`);
  });
});

describe('positiveNumber', () => {
  it.each([1, 0.5, Number.MIN_VALUE, Number.MAX_VALUE])('accepts %d', (value) => {
    expect(v.positiveNumber(value, 'amount')).toBe(value);
  });

  it.each<[string, unknown, string]>([
    ['zero', 0, '0'],
    ['negative zero', -0, '0'],
    ['a negative number', -1, '-1'],
    ['Infinity', Number.POSITIVE_INFINITY, 'Infinity'],
    ['NaN', Number.NaN, 'NaN'],
    ['a numeric string', '5', 'the string "5"'],
    ['a Long', Long.fromNumber(5), 'a Long'],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(
      () => v.positiveNumber(value, 'amount'),
      'amount',
      `must be a finite number greater than 0, got ${described}`,
    );
  });
});

describe('finiteNumber', () => {
  it.each([0, -5.5, 7, -Number.MAX_VALUE])('accepts %d', (value) => {
    expect(v.finiteNumber(value, 'by')).toBe(value);
  });

  it.each<[string, unknown, string]>([
    ['Infinity', Number.POSITIVE_INFINITY, 'Infinity'],
    ['-Infinity', Number.NEGATIVE_INFINITY, '-Infinity'],
    ['NaN', Number.NaN, 'NaN'],
    ['a numeric string', '1', 'the string "1"'],
    ['null', null, 'null'],
  ])('refuses %s', (_name, value, described) => {
    expectRefused(
      () => v.finiteNumber(value, 'by'),
      'by',
      `must be a finite number, got ${described}`,
    );
  });
});

describe('integer', () => {
  it.each<[number, number]>([
    [1, 1],
    [5, 1],
    [0, 0],
    [-5, -5],
  ])('accepts %d with min %d', (value, min) => {
    expect(v.integer(value, 'maxAttempts', min)).toBe(value);
  });

  it.each<[string, unknown, number, string]>([
    ['min - 1', 0, 1, '0'],
    ['min - 1 at zero', -1, 0, '-1'],
    ['a fraction', 1.5, 1, '1.5'],
    ['NaN', Number.NaN, 1, 'NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 1, 'Infinity'],
    ['a numeric string', '2', 1, 'the string "2"'],
  ])('refuses %s', (_name, value, min, described) => {
    expectRefused(
      () => v.integer(value, 'maxAttempts', min),
      'maxAttempts',
      `must be a whole number ≥ ${min}, got ${described}`,
    );
  });
});

describe('boolean', () => {
  it('accepts true and false', () => {
    expect(v.boolean(true, 'upsert')).toBe(true);
    expect(v.boolean(false, 'upsert')).toBe(false);
  });

  it.each<[unknown, string]>([
    ['true', 'the string "true"'],
    [0, '0'],
    [null, 'null'],
  ])('refuses %j', (value, described) => {
    expectRefused(
      () => v.boolean(value, 'upsert'),
      'upsert',
      `must be true or false, got ${described}`,
    );
  });
});

describe('function', () => {
  it('accepts functions and classes', () => {
    class Hook {}
    expect(v.function(fn, 'onRetry')).toBe(fn);
    expect(v.function(Hook, 'onRetry')).toBe(Hook);
  });

  it.each<[unknown, string]>([
    ['x', 'the string "x"'],
    [{}, 'an object'],
    [undefined, 'a undefined'],
  ])('refuses %j', (value, described) => {
    expectRefused(
      () => v.function(value, 'onRetry'),
      'onRetry',
      `must be a function, got ${described}`,
    );
  });
});

describe('knownKeys', () => {
  it('accepts known keys and no keys', () => {
    expect(() => v.knownKeys({ amount: 1, filter: {} }, ['amount', 'filter'])).not.toThrow();
    expect(() => v.knownKeys({}, ['amount'])).not.toThrow();
    expect(() => v.knownKeys({ a: 1 }, ['a', 'b'], 'match')).not.toThrow();
  });

  it('names the first unknown option and lists the known ones', () => {
    expectRefused(
      () => v.knownKeys({ amount: 1, amout: 2, other: 3 }, ['amount', 'filter', 'session']),
      'amout',
      'is not an option of guardedDecrement (known: amount, filter, session)',
    );
  });

  it('names an unknown key of a nested option by its path', () => {
    expectRefused(
      () => v.knownKeys({ a: 1, x: 2 }, ['a', 'b'], 'match'),
      'match.x',
      'is not a key of match (known: a, b)',
    );
  });
});
