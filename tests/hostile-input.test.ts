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
import { confirmHold, holdQuantity, releaseExpiredHolds, releaseHold } from '../src/holds.js';
import { ensureIdempotencyIndexes, withIdempotencyKey } from '../src/idempotency.js';
import { incrementOrPushArrayItem } from '../src/increment-or-push.js';
import { acquireLease, fencedUpdate, releaseLease, renewLease, withLease } from '../src/lease.js';
import { confirmPlace, holdPlace, releaseExpiredPlaces, releasePlace } from '../src/seat-holds.js';
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
const placeSet = { filter: { _id: 'e1' }, array: 'members', counter: 'count' };
const placeHold = { ...placeSet, member: 'u1', capacity: 5, holdId: 'h1', ttlMs: 1000 };
const placeSettle = { ...placeSet, holdId: 'h1' };
const placeSweep = { counter: 'count' };
const claim = { filter: { _id: 'o1' }, field: 'status', to: 'paid' };
const decrement = { filter: { _id: 'p1' }, field: 'stock', amount: 1 };
const cart = { filter: { userId: 'u1' }, array: 'courses', match: { courseId: 'c1' } };
const versioned = { filter: { _id: 's1' }, update: () => ({ $set: { a: 1 } }) };
const holding = { filter: { _id: 'p1' }, field: 'stock', amount: 1, holdId: 'h1', ttlMs: 1000 };
const settling = { filter: { _id: 'p1' }, field: 'stock', holdId: 'h1' };
const sweeping = { field: 'stock' };
/** The path options every holds call takes. */
const holdPaths = (
  valid: Record<string, unknown>,
): [string, (path: string) => Record<string, unknown>][] =>
  (['field', 'holdsField', 'settledField'] as const).map((option) => [
    option,
    (path: string) => ({ ...valid, [option]: path }),
  ]);
const holdsRows = (
  name: string,
  call: Call,
  valid: Record<string, unknown>,
  numbers: Primitive['numbers'] = [],
): Primitive => ({
  name,
  call,
  valid,
  paths: holdPaths(valid),
  pathKeys: [],
  fieldKeys: [],
  scalars: [],
  numbers,
  filters: [['filter', (f) => ({ ...valid, filter: f })]],
  session: true,
});

const settlePrimitive = (
  name: string,
  call: (o: Record<string, unknown>) => Promise<unknown>,
): Primitive => ({
  name,
  call,
  valid: placeSettle,
  paths: [
    ['array', (p) => ({ ...placeSettle, array: p })],
    ['counter', (p) => ({ ...placeSettle, counter: p })],
    ['holdsField', (p) => ({ ...placeSettle, holdsField: p })],
  ],
  pathKeys: [],
  fieldKeys: [],
  scalars: [],
  numbers: [],
  filters: [['filter', (f) => ({ ...placeSettle, filter: f })]],
  session: true,
});

const PRIMITIVES: readonly Primitive[] = [
  holdsRows('holdQuantity', (o) => holdQuantity(coll(), o as never), holding, [
    ['amount', 'amount', (n) => ({ ...holding, amount: n })],
    ['floor', 'floor', (n) => ({ ...holding, floor: n })],
    ['ttlMs', 'ttlMs', (n) => ({ ...holding, ttlMs: n })],
    ['maxHolds', 'maxHolds', (n) => ({ ...holding, maxHolds: n })],
    ['keepSettled', 'keepSettled', (n) => ({ ...holding, keepSettled: n })],
  ]),
  holdsRows('confirmHold', (o) => confirmHold(coll(), o as never), settling),
  holdsRows('releaseHold', (o) => releaseHold(coll(), o as never), settling),
  holdsRows('releaseExpiredHolds', (o) => releaseExpiredHolds(coll(), o as never), sweeping),
  {
    name: 'holdPlace',
    call: (o) => holdPlace(coll(), o as never),
    valid: placeHold,
    paths: [
      ['array', (p) => ({ ...placeHold, array: p })],
      ['counter', (p) => ({ ...placeHold, counter: p })],
      ['holdsField', (p) => ({ ...placeHold, holdsField: p })],
      ['capacity', (p) => ({ ...placeHold, capacity: p })],
    ],
    pathKeys: [],
    fieldKeys: [],
    scalars: [['member', 'member', (m) => ({ ...placeHold, member: m })]],
    numbers: [
      ['capacity', 'capacity', (n) => ({ ...placeHold, capacity: n })],
      ['ttlMs', 'ttlMs', (n) => ({ ...placeHold, ttlMs: n })],
      ['maxHolds', 'maxHolds', (n) => ({ ...placeHold, maxHolds: n })],
    ],
    filters: [['filter', (f) => ({ ...placeHold, filter: f })]],
    session: true,
  },
  settlePrimitive('confirmPlace', (o) => confirmPlace(coll(), o as never)),
  settlePrimitive('releasePlace', (o) => releasePlace(coll(), o as never)),
  {
    name: 'releaseExpiredPlaces',
    call: (o) => releaseExpiredPlaces(coll(), o as never),
    valid: placeSweep,
    paths: [
      ['counter', (p) => ({ ...placeSweep, counter: p })],
      ['holdsField', (p) => ({ ...placeSweep, holdsField: p })],
    ],
    pathKeys: [],
    fieldKeys: [],
    scalars: [],
    numbers: [],
    filters: [['filter', (f) => ({ ...placeSweep, filter: f })]],
    session: true,
  },
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
  ...leasePrimitives(),
];

/** The lease functions: `name` is an argument, the options come after it. */
function leasePrimitives(): Primitive[] {
  const none = { paths: [], pathKeys: [], fieldKeys: [], scalars: [], filters: [] } as const;
  const acquire = { holder: 'a', ttlMs: 1 };
  const renew = { token: 1, ttlMs: 1 };
  const fenced = { filter: { _id: 'd' }, update: { $set: { x: 1 } }, token: 1 };
  return [
    {
      ...none,
      name: 'acquireLease',
      call: (o) => acquireLease(coll(), 'n', o as never),
      valid: acquire,
      numbers: [['ttlMs', 'ttlMs', (n) => ({ ...acquire, ttlMs: n })]],
      session: true,
    },
    {
      ...none,
      name: 'renewLease',
      call: (o) => renewLease(coll(), 'n', o as never),
      valid: renew,
      numbers: [
        ['ttlMs', 'ttlMs', (n) => ({ ...renew, ttlMs: n })],
        ['token', 'token', (n) => ({ ...renew, token: n })],
      ],
      session: false,
    },
    {
      ...none,
      name: 'releaseLease',
      call: (o) => releaseLease(coll(), 'n', o as never),
      valid: { token: 1 },
      numbers: [['token', 'token', (n) => ({ token: n })]],
      session: false,
    },
    {
      ...none,
      name: 'withLease',
      call: (o) => withLease(coll(), 'n', async () => 1, o as never),
      valid: acquire,
      numbers: [['ttlMs', 'ttlMs', (n) => ({ ...acquire, ttlMs: n })]],
      session: false,
    },
    {
      ...none,
      name: 'fencedUpdate',
      call: (o) => fencedUpdate(coll(), o as never),
      valid: fenced,
      paths: [['fenceField', (p) => ({ ...fenced, fenceField: p })]],
      numbers: [['token', 'token', (n) => ({ ...fenced, token: n })]],
      filters: [['filter', (f) => ({ ...fenced, filter: f })]],
      session: true,
    },
  ];
}

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

/**
 * An error names the option when it names it or a place inside it: `level.$gt` for a bad key
 * of `level`, `filter._id` for a fake ObjectId in the filter.
 */
function namesOption(named: string, option: string): boolean {
  return named === option || named.startsWith(`${option}.`);
}

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
    expect(error).toMatchObject({ primitive });
    expect((error as InvalidArgumentError).option).toSatisfy((named: string) =>
      namesOption(named, option),
    );
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

// =============================================================================================
// The option matrix (issue 8): EVERY option of EVERY primitive × EVERY hostile value.
//
// Each option has a kind; each kind lists the hostile values it legitimately takes (a dotted
// string is a fine path, a function is a fine callback, -0 is a fine floor). Every other pair
// is a row that must be refused on entry, naming the option (or a key inside it), with nothing
// sent and Object.prototype untouched; every accepted pair is a row too, which must NOT be
// refused as invalid. A coverage test asks each validator for the keys it knows (an unknown
// key's error lists them) and fails when an option has no rows.

/** The hostile values a request can carry, each built fresh per row. */
const HOSTILE = {
  null: () => null,
  true: () => true,
  'the number 1': () => 1,
  'the string "x"': () => 'x',
  'an array ["x"]': () => ['x'],
  'an empty object': () => ({}),
  NaN: () => Number.NaN,
  Infinity: () => Number.POSITIVE_INFINITY,
  '-Infinity': () => Number.NEGATIVE_INFINITY,
  '-0': () => -0,
  'the numeric string "3"': () => '3',
  'Double(NaN)': () => new Double(Number.NaN),
  "Decimal128('NaN')": () => Decimal128.fromString('NaN'),
  "Decimal128('-Infinity')": () => Decimal128.fromString('-Infinity'),
  'a JSON {"_bsontype":"ObjectId"}': fakeObjectId,
  'a string with a NUL byte': () => 'a\0b',
  "{ $gt: '' }": () => ({ $gt: '' }),
  '{ $ne: null }': () => ({ $ne: null }),
  'an own "__proto__" key': () => own([['__proto__', { isAdmin: true }]]),
  'a "constructor" key': () => own([['constructor', { prototype: { isAdmin: true } }]]),
  'the string "__proto__"': () => '__proto__',
  'the dotted string "a.b"': () => 'a.b',
  'the string "$x"': () => '$x',
  'a 1 MB string': () => 'x'.repeat(1 << 20),
  'a BigInt': () => 10n,
  'a Symbol': () => Symbol('x'),
  'a function': () => () => null,
  'an invalid Date': () => new Date(Number.NaN),
  'a look-alike session': () => ({
    inTransaction: () => true,
    endSession: async () => undefined,
    hasEnded: false,
  }),
  'a session of another MongoClient': () => {
    const session = other.startSession();
    session.startTransaction();
    return session;
  },
} as const satisfies Record<string, () => unknown>;
type Hostile = keyof typeof HOSTILE;

/**
 * What each kind of option legitimately takes among the hostile values. Everything else must
 * be refused. The reasons are the contract:
 * - `-0` is taken where 0 itself is valid and the sign cannot matter (a floor, a threshold, a
 *   delay, an identity: MongoDB compares -0 equal to 0); refused wherever 0 is refused.
 * - a string with a NUL byte is a fine string VALUE (BSON strings carry their length) but never
 *   a path or field name (BSON names end at the first NUL);
 * - operator objects and `__proto__` keys are fine INSIDE a filter or a stored value (the
 *   library sends them as given and never rebuilds them in JavaScript; `{ _id: { $ne: null } }`
 *   is the caller's query); never as an identity, a state or an amount.
 */
const KINDS = {
  /** A dotted field path (also a path the primitive writes). */
  path: ['the string "x"', 'the numeric string "3"', 'the dotted string "a.b"'],
  /** A whole number ≥ 1 or a path (addToSetWithCapacity's capacity). */
  capacity: ['the number 1', 'the string "x"', 'the numeric string "3"', 'the dotted string "a.b"'],
  /** An identity or a state: a BSON scalar. */
  scalar: [
    'true',
    'the number 1',
    'the string "x"',
    '-0',
    'the numeric string "3"',
    'a string with a NUL byte',
    'the string "__proto__"',
    'the dotted string "a.b"',
    'the string "$x"',
  ],
  /** An element of claimOnce's `from`: a scalar, or null (the field is missing or null). */
  state: [
    'null',
    'true',
    'the number 1',
    'the string "x"',
    '-0',
    'the numeric string "3"',
    'a string with a NUL byte',
    'the string "__proto__"',
    'the dotted string "a.b"',
    'the string "$x"',
  ],
  /** claimOnce's `from`: a scalar or a non-empty list of them (null = field missing). */
  states: [
    'null',
    'true',
    'the number 1',
    'the string "x"',
    'an array ["x"]',
    '-0',
    'the numeric string "3"',
    'a string with a NUL byte',
    'the string "__proto__"',
    'the dotted string "a.b"',
    'the string "$x"',
  ],
  /** A finite number > 0 (amounts, increments, timeouts, caps). */
  positive: ['the number 1'],
  /** A whole number ≥ 1. */
  count: ['the number 1'],
  /** withRetryingTransaction's maxAttempts: a whole number ≥ 1, or Infinity (the time budget alone bounds the attempts). */
  attempts: ['the number 1', 'Infinity'],
  /** Any finite number (a floor, a threshold, a badge's atLeast). */
  finite: ['the number 1', '-0'],
  /** A write concern's fsync: a boolean, or 1 (the driver's type takes it). */
  fsync: ['true', 'the number 1'],
  /** Whole milliseconds ≥ 0, 0 meaning none (a write concern timeout). */
  millis: ['the number 1', '-0'],
  /** A write concern's w: a number of members ≥ 1, or a mode name ('majority', a tag set). */
  w: [
    'the number 1',
    'the string "x"',
    'the numeric string "3"',
    'a string with a NUL byte',
    'the string "__proto__"',
    'the dotted string "a.b"',
    'the string "$x"',
  ],
  /** A finite number ≥ 0 (a backoff delay). */
  delay: ['the number 1', '-0'],
  /** backoff.factor: a finite number ≥ 1. */
  factor: ['the number 1'],
  /** A non-empty string of bounded length (opId, key, fingerprint, a badge name). */
  text: [
    'the string "x"',
    'the numeric string "3"',
    'a string with a NUL byte',
    'the string "__proto__"',
    'the dotted string "a.b"',
    'the string "$x"',
  ],
  /** A query filter: a non-empty plain object; operators inside are the caller's query. */
  filter: ["{ $gt: '' }", '{ $ne: null }', 'an own "__proto__" key', 'a "constructor" key'],
  /** A filter that must select one document by `_id` equality (the seat-hold calls): none of these. */
  idFilter: [],
  /**
   * A value stored as given (claimOnce set.x, incrementOrPush fields.x): any BSON value, NaN
   * and a 1 MB string included (it is the caller's data; the 16 MB document limit applies);
   * a BigInt is stored as a 64-bit integer; `$` keys are data (incrementOrPush documents that
   * `{ $inc: 1 }` is stored as given). Never a function, Symbol, invalid Date or class instance
   * (the driver would drop or mangle it), nor an object with a prototype-named key (the stored
   * field `a.__proto__` that a path refuses).
   */
  value: [
    'null',
    'true',
    'the number 1',
    'the string "x"',
    'an array ["x"]',
    'an empty object',
    'NaN',
    'Infinity',
    '-Infinity',
    '-0',
    'the numeric string "3"',
    'Double(NaN)',
    "Decimal128('NaN')",
    "Decimal128('-Infinity')",
    'a string with a NUL byte',
    "{ $gt: '' }",
    '{ $ne: null }',
    'the string "__proto__"',
    'the dotted string "a.b"',
    'the string "$x"',
    'a 1 MB string',
    'a BigInt',
  ],
  /** An object of options or fields whose keys are checked (empty allowed). */
  object: ['an empty object'],
  /** An object that must name at least one key. */
  nonEmptyObject: [],
  /** A non-empty array. */
  list: [],
  /** A callback. */
  function: ['a function'],
  boolean: ['true'],
  /** Anything but what these options want: sessions, clients, collections, signals, enums. */
  none: [],
} as const satisfies Record<string, readonly Hostile[]>;
type Kind = keyof typeof KINDS;

/** An option of a primitive: its name, kind, and the call with that option set to `value`. */
type OptionSpec = readonly [option: string, kind: Kind, call: (value: unknown) => Promise<unknown>];

const op = 'req-1';
const withOpIdLog = (
  base: () => Record<string, unknown>,
  call: (o: Record<string, unknown>) => Promise<unknown>,
): OptionSpec[] => [
  ['opId', 'text', (x) => call({ ...base(), opId: x })],
  ['opIdLog', 'object', (x) => call({ ...base(), opId: op, opIdLog: x })],
  ['opIdLog.field', 'path', (x) => call({ ...base(), opId: op, opIdLog: { field: x } })],
  ['opIdLog.size', 'count', (x) => call({ ...base(), opId: op, opIdLog: { size: x } })],
];
/** Every collection-taking primitive refuses the same look-alikes of a collection. */
const collectionSpec = (call: (c: unknown) => Promise<unknown>): OptionSpec => [
  'collection',
  'none',
  call,
];
const backoffSpecs = (set: (backoff: unknown) => Promise<unknown>, prefix = ''): OptionSpec[] => [
  [`${prefix}backoff`, 'object', set],
  [`${prefix}backoff.initialDelayMs`, 'delay', (x) => set({ initialDelayMs: x })],
  [`${prefix}backoff.factor`, 'factor', (x) => set({ factor: x })],
  [`${prefix}backoff.maxDelayMs`, 'delay', (x) => set({ maxDelayMs: x })],
  [`${prefix}backoff.jitter`, 'none', (x) => set({ jitter: x })],
];
/** withRetryingTransaction's options, also reachable as withIdempotencyKey's `transaction.*`. */
const runnerSpecs = (
  call: (options: Record<string, unknown>) => Promise<unknown>,
  prefix = '',
): OptionSpec[] => [
  [`${prefix}timeoutMs`, 'positive', (x) => call({ timeoutMs: x })],
  [`${prefix}maxAttempts`, 'attempts', (x) => call({ maxAttempts: x })],
  ...backoffSpecs((x) => call({ backoff: x }), prefix),
  [`${prefix}onRetry`, 'function', (x) => call({ onRetry: x })],
  [`${prefix}signal`, 'none', (x) => call({ signal: x })],
  [`${prefix}transactionOptions`, 'object', (x) => call({ transactionOptions: x })],
  [
    `${prefix}transactionOptions.readConcern`,
    'none',
    (x) => call({ transactionOptions: { readConcern: x } }),
  ],
  [
    `${prefix}transactionOptions.writeConcern`,
    'object',
    (x) => call({ transactionOptions: { writeConcern: x } }),
  ],
  ...(
    [
      ['w', 'w'],
      ['j', 'boolean'],
      ['journal', 'boolean'],
      ['fsync', 'fsync'],
      ['wtimeout', 'millis'],
      ['wtimeoutMS', 'millis'],
    ] as const
  ).map(
    ([key, kind]): OptionSpec => [
      `${prefix}transactionOptions.writeConcern.${key}`,
      kind,
      (x) => call({ transactionOptions: { writeConcern: { [key]: x } } }),
    ],
  ),
  [
    `${prefix}transactionOptions.readPreference`,
    'none',
    (x) => call({ transactionOptions: { readPreference: x } }),
  ],
  [
    `${prefix}transactionOptions.maxCommitTimeMS`,
    'count',
    (x) => call({ transactionOptions: { maxCommitTimeMS: x } }),
  ],
];

const matrixColl = () => t.db.collection('hostile_matrix');
let keySeq = 0;
const freshKey = () => {
  keySeq += 1;
  return `k-${keySeq}`;
};

/** confirmPlace's and releasePlace's options (the same). */
function settleSpecs(settle: typeof confirmPlace | typeof releasePlace): OptionSpec[] {
  const call = (o: Record<string, unknown>) => settle(matrixColl(), o as never);
  const base = () => ({ ...placeSettle });
  return [
    collectionSpec((c) => settle(c as never, base() as never)),
    ['filter', 'idFilter', (x) => call({ ...base(), filter: x })],
    ['array', 'path', (x) => call({ ...base(), array: x })],
    ['counter', 'path', (x) => call({ ...base(), counter: x })],
    ['holdsField', 'path', (x) => call({ ...base(), holdsField: x })],
    ['holdId', 'text', (x) => call({ ...base(), holdId: x })],
    ['session', 'none', (x) => call({ ...base(), session: x })],
  ];
}

/** Per primitive: every option it takes (arguments included) with its kind and a call. */
const OPTION_SPECS: Record<string, () => OptionSpec[]> = {
  applyProgress: () => {
    const call = (o: Record<string, unknown>) => applyProgress(matrixColl(), o as never);
    const base = () => ({ filter: { _id: 's1' }, inc: { xp: 10 } });
    const level = (o: Record<string, unknown>) => call({ ...base(), level: { ...LEVEL, ...o } });
    const badges = (o: Record<string, unknown>) => call({ ...base(), badges: { ...BADGES, ...o } });
    const rule = (o: Record<string, unknown>) => badges({ rules: [{ ...BADGES.rules[0], ...o }] });
    return [
      collectionSpec((c) => applyProgress(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['inc', 'nonEmptyObject', (x) => call({ ...base(), inc: x })],
      ['inc.xp', 'positive', (x) => call({ ...base(), inc: { xp: x } })],
      ['level', 'nonEmptyObject', (x) => call({ ...base(), level: x })],
      ['level.field', 'path', (x) => level({ field: x })],
      ['level.counter', 'path', (x) => level({ counter: x })],
      ['level.thresholds', 'list', (x) => level({ thresholds: x })],
      ['level.thresholds.0', 'finite', (x) => level({ thresholds: [x] })],
      ['badges', 'nonEmptyObject', (x) => call({ ...base(), badges: x })],
      ['badges.field', 'path', (x) => badges({ field: x })],
      ['badges.rules', 'list', (x) => badges({ rules: x })],
      ['badges.rules.0', 'nonEmptyObject', (x) => badges({ rules: [x] })],
      ['badges.rules.0.badge', 'text', (x) => rule({ badge: x })],
      ['badges.rules.0.counter', 'path', (x) => rule({ counter: x })],
      ['badges.rules.0.atLeast', 'finite', (x) => rule({ atLeast: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
      ...withOpIdLog(base, call),
    ];
  },
  addToSetWithCapacity: () => {
    const call = (o: Record<string, unknown>) => addToSetWithCapacity(matrixColl(), o as never);
    const base = () => ({ ...seats, capacity: 5 });
    return [
      collectionSpec((c) => addToSetWithCapacity(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['array', 'path', (x) => call({ ...base(), array: x })],
      ['member', 'scalar', (x) => call({ ...base(), member: x })],
      ['counter', 'path', (x) => call({ ...base(), counter: x })],
      ['capacity', 'capacity', (x) => call({ ...base(), capacity: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
      ...withOpIdLog(base, call),
    ];
  },
  holdPlace: () => {
    const call = (o: Record<string, unknown>) => holdPlace(matrixColl(), o as never);
    const base = () => ({ ...placeHold });
    return [
      collectionSpec((c) => holdPlace(c as never, base() as never)),
      ['filter', 'idFilter', (x) => call({ ...base(), filter: x })],
      ['array', 'path', (x) => call({ ...base(), array: x })],
      ['counter', 'path', (x) => call({ ...base(), counter: x })],
      ['holdsField', 'path', (x) => call({ ...base(), holdsField: x })],
      ['member', 'scalar', (x) => call({ ...base(), member: x })],
      ['capacity', 'capacity', (x) => call({ ...base(), capacity: x })],
      ['holdId', 'text', (x) => call({ ...base(), holdId: x })],
      ['ttlMs', 'count', (x) => call({ ...base(), ttlMs: x })],
      ['maxHolds', 'count', (x) => call({ ...base(), maxHolds: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
    ];
  },
  confirmPlace: () => settleSpecs(confirmPlace),
  releasePlace: () => settleSpecs(releasePlace),
  releaseExpiredPlaces: () => {
    const call = (o: Record<string, unknown>) => releaseExpiredPlaces(matrixColl(), o as never);
    const base = () => ({ ...placeSweep });
    return [
      collectionSpec((c) => releaseExpiredPlaces(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['counter', 'path', (x) => call({ ...base(), counter: x })],
      ['holdsField', 'path', (x) => call({ ...base(), holdsField: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
    ];
  },
  removeFromSetWithCapacity: () => {
    const call = (o: Record<string, unknown>) =>
      removeFromSetWithCapacity(matrixColl(), o as never);
    const base = () => ({ ...seats });
    return [
      collectionSpec((c) => removeFromSetWithCapacity(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['array', 'path', (x) => call({ ...base(), array: x })],
      ['member', 'scalar', (x) => call({ ...base(), member: x })],
      ['counter', 'path', (x) => call({ ...base(), counter: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
      ...withOpIdLog(base, call),
    ];
  },
  claimOnce: () => {
    const call = (o: Record<string, unknown>) => claimOnce(matrixColl(), o as never);
    const base = () => ({ ...claim });
    return [
      collectionSpec((c) => claimOnce(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['field', 'path', (x) => call({ ...base(), field: x })],
      ['to', 'scalar', (x) => call({ ...base(), to: x })],
      ['from', 'states', (x) => call({ ...base(), from: x })],
      ['from.0', 'state', (x) => call({ ...base(), from: [x] })],
      ['set', 'object', (x) => call({ ...base(), set: x })],
      ['set.paidWith', 'value', (x) => call({ ...base(), set: { paidWith: x } })],
      ['requires', 'filter', (x) => call({ ...base(), requires: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
      ...withOpIdLog(base, call),
    ];
  },
  holdQuantity: () => {
    const call = (o: Record<string, unknown>) => holdQuantity(matrixColl(), o as never);
    const base = () => ({ ...holding });
    return [
      collectionSpec((c) => holdQuantity(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['field', 'path', (x) => call({ ...base(), field: x })],
      ['amount', 'positive', (x) => call({ ...base(), amount: x })],
      ['holdId', 'text', (x) => call({ ...base(), holdId: x })],
      ['ttlMs', 'count', (x) => call({ ...base(), ttlMs: x })],
      ['floor', 'finite', (x) => call({ ...base(), floor: x })],
      ['maxHolds', 'count', (x) => call({ ...base(), maxHolds: x })],
      ['holdsField', 'path', (x) => call({ ...base(), holdsField: x })],
      ['settledField', 'path', (x) => call({ ...base(), settledField: x })],
      ['keepSettled', 'count', (x) => call({ ...base(), keepSettled: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
    ];
  },
  ...Object.fromEntries(
    (
      [
        ['confirmHold', confirmHold],
        ['releaseHold', releaseHold],
      ] as const
    ).map(([name, settle]) => [
      name,
      (): OptionSpec[] => {
        const call = (o: Record<string, unknown>) => settle(matrixColl(), o as never);
        const base = () => ({ ...settling });
        return [
          collectionSpec((c) => settle(c as never, base() as never)),
          ['filter', 'filter', (x) => call({ ...base(), filter: x })],
          ['field', 'path', (x) => call({ ...base(), field: x })],
          ['holdId', 'text', (x) => call({ ...base(), holdId: x })],
          ['holdsField', 'path', (x) => call({ ...base(), holdsField: x })],
          ['settledField', 'path', (x) => call({ ...base(), settledField: x })],
          ['keepSettled', 'count', (x) => call({ ...base(), keepSettled: x })],
          ['session', 'none', (x) => call({ ...base(), session: x })],
        ];
      },
    ]),
  ),
  releaseExpiredHolds: () => {
    const call = (o: Record<string, unknown>) => releaseExpiredHolds(matrixColl(), o as never);
    const base = () => ({ ...sweeping });
    return [
      collectionSpec((c) => releaseExpiredHolds(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['field', 'path', (x) => call({ ...base(), field: x })],
      ['holdsField', 'path', (x) => call({ ...base(), holdsField: x })],
      ['settledField', 'path', (x) => call({ ...base(), settledField: x })],
      ['keepSettled', 'count', (x) => call({ ...base(), keepSettled: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
    ];
  },
  guardedDecrement: () => {
    const call = (o: Record<string, unknown>) => guardedDecrement(matrixColl(), o as never);
    const base = () => ({ ...decrement });
    return [
      collectionSpec((c) => guardedDecrement(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['field', 'path', (x) => call({ ...base(), field: x })],
      ['amount', 'positive', (x) => call({ ...base(), amount: x })],
      ['floor', 'finite', (x) => call({ ...base(), floor: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
      ...withOpIdLog(base, call),
    ];
  },
  guardedDecrementAll: () => {
    const call = (o: Record<string, unknown>) => guardedDecrementAll(matrixColl(), o as never);
    const item = { filter: { _id: 'a' }, amount: 1 };
    const base = () => ({ field: 'stock', items: [item], client: t.client });
    const inTransaction = (o: Record<string, unknown>) => call({ ...base(), transaction: o });
    return [
      collectionSpec((c) => guardedDecrementAll(c as never, base() as never)),
      ['items', 'list', (x) => call({ ...base(), items: x })],
      ['items.0', 'nonEmptyObject', (x) => call({ ...base(), items: [x] })],
      ['items.0.filter', 'filter', (x) => call({ ...base(), items: [{ ...item, filter: x }] })],
      ['items.0.amount', 'positive', (x) => call({ ...base(), items: [{ ...item, amount: x }] })],
      ['field', 'path', (x) => call({ ...base(), field: x })],
      ['floor', 'finite', (x) => call({ ...base(), floor: x })],
      ['session', 'none', (x) => call({ field: 'stock', items: [item], session: x })],
      ['client', 'none', (x) => call({ ...base(), client: x })],
      ['transaction', 'object', (x) => call({ ...base(), transaction: x })],
      ...runnerSpecs(inTransaction, 'transaction.'),
    ];
  },
  incrementOrPushArrayItem: () => {
    const call = (o: Record<string, unknown>) => incrementOrPushArrayItem(matrixColl(), o as never);
    const base = () => ({ ...cart });
    return [
      collectionSpec((c) => incrementOrPushArrayItem(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['array', 'path', (x) => call({ ...base(), array: x })],
      ['match', 'nonEmptyObject', (x) => call({ ...base(), match: x })],
      ['match.courseId', 'scalar', (x) => call({ ...base(), match: { courseId: x } })],
      ['inc', 'nonEmptyObject', (x) => call({ ...base(), inc: x })],
      ['inc.quantity', 'positive', (x) => call({ ...base(), inc: { quantity: x } })],
      ['fields', 'object', (x) => call({ ...base(), fields: x })],
      ['fields.title', 'value', (x) => call({ ...base(), fields: { title: x } })],
      ['max', 'object', (x) => call({ ...base(), max: x })],
      ['max.quantity', 'positive', (x) => call({ ...base(), max: { quantity: x } })],
      ['upsert', 'boolean', (x) => call({ ...base(), upsert: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
      ...withOpIdLog(base, call),
    ];
  },
  updateWithVersion: () => {
    const call = (o: Record<string, unknown>) => updateWithVersion(matrixColl(), o as never);
    const base = () => ({ filter: { _id: 's1' }, update: () => null });
    return [
      collectionSpec((c) => updateWithVersion(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['update', 'function', (x) => call({ ...base(), update: x })],
      ['versionField', 'path', (x) => call({ ...base(), versionField: x })],
      ['maxAttempts', 'count', (x) => call({ ...base(), maxAttempts: x })],
      ...backoffSpecs((x) => call({ ...base(), backoff: x })),
      ['onConflict', 'function', (x) => call({ ...base(), onConflict: x })],
      ['signal', 'none', (x) => call({ ...base(), signal: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
      ...withOpIdLog(base, call),
    ];
  },
  withIdempotencyKey: () => {
    const call = (o: Record<string, unknown>) => withIdempotencyKey(matrixColl(), o as never);
    const base = () => ({ key: freshKey(), fn: async () => 1 });
    const inTransaction = (o: Record<string, unknown>) =>
      call({ ...base(), client: t.client, transaction: o });
    return [
      collectionSpec((c) => withIdempotencyKey(c as never, base() as never)),
      ['key', 'text', (x) => call({ ...base(), key: x })],
      ['fn', 'function', (x) => call({ ...base(), fn: x })],
      ['fingerprint', 'text', (x) => call({ ...base(), fingerprint: x })],
      ['leaseMs', 'positive', (x) => call({ ...base(), leaseMs: x })],
      ['retentionMs', 'positive', (x) => call({ ...base(), leaseMs: 0.5, retentionMs: x })],
      ['wait', 'nonEmptyObject', (x) => call({ ...base(), wait: x })],
      ['wait.timeoutMs', 'positive', (x) => call({ ...base(), wait: { timeoutMs: x } })],
      [
        'wait.intervalMs',
        'positive',
        (x) => call({ ...base(), wait: { timeoutMs: 1000, intervalMs: x } }),
      ],
      ['client', 'none', (x) => call({ ...base(), client: x })],
      ['transaction', 'object', (x) => call({ ...base(), client: t.client, transaction: x })],
      ...runnerSpecs(inTransaction, 'transaction.'),
      // Refused whatever it holds: the claim must commit outside any caller's transaction.
      ['session', 'none', (x) => call({ ...base(), session: x })],
    ];
  },
  acquireLease: () => {
    const call = (o: Record<string, unknown>) => acquireLease(matrixColl(), 'n', o as never);
    const base = () => ({ holder: 'a', ttlMs: 60_000 });
    return [
      collectionSpec((c) => acquireLease(c as never, 'n', base())),
      ['name', 'text', (x) => acquireLease(matrixColl(), x as never, base())],
      ['holder', 'text', (x) => call({ ...base(), holder: x })],
      ['ttlMs', 'count', (x) => call({ ...base(), ttlMs: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
    ];
  },
  renewLease: () => {
    const call = (o: Record<string, unknown>) => renewLease(matrixColl(), 'n', o as never);
    const base = () => ({ token: 1, ttlMs: 60_000 });
    return [
      collectionSpec((c) => renewLease(c as never, 'n', base())),
      ['name', 'text', (x) => renewLease(matrixColl(), x as never, base())],
      ['token', 'count', (x) => call({ ...base(), token: x })],
      ['ttlMs', 'count', (x) => call({ ...base(), ttlMs: x })],
    ];
  },
  releaseLease: () => {
    const call = (o: Record<string, unknown>) => releaseLease(matrixColl(), 'n', o as never);
    return [
      collectionSpec((c) => releaseLease(c as never, 'n', { token: 1 })),
      ['name', 'text', (x) => releaseLease(matrixColl(), x as never, { token: 1 })],
      ['token', 'count', (x) => call({ token: x })],
    ];
  },
  withLease: () => {
    const fnOk = async () => 1;
    const call = (o: Record<string, unknown>) =>
      withLease(matrixColl(), `w-${freshKey()}`, fnOk, o as never);
    const base = () => ({ holder: 'a', ttlMs: 60_000 });
    return [
      collectionSpec((c) => withLease(c as never, 'n', fnOk, base())),
      ['name', 'text', (x) => withLease(matrixColl(), x as never, fnOk, base())],
      ['fn', 'function', (x) => withLease(matrixColl(), `w-${freshKey()}`, x as never, base())],
      ['holder', 'text', (x) => call({ ...base(), holder: x })],
      ['ttlMs', 'count', (x) => call({ ...base(), ttlMs: x })],
      ['renewEveryMs', 'count', (x) => call({ ...base(), renewEveryMs: x })],
      ['onRenew', 'function', (x) => call({ ...base(), onRenew: x })],
      ['onRenewError', 'function', (x) => call({ ...base(), onRenewError: x })],
      ['onLost', 'function', (x) => call({ ...base(), onLost: x })],
      ['onReleaseError', 'function', (x) => call({ ...base(), onReleaseError: x })],
    ];
  },
  fencedUpdate: () => {
    const call = (o: Record<string, unknown>) => fencedUpdate(matrixColl(), o as never);
    const base = () => ({ filter: { _id: 'd' }, update: { $set: { y: 1 } }, token: 1 });
    return [
      collectionSpec((c) => fencedUpdate(c as never, base() as never)),
      ['filter', 'filter', (x) => call({ ...base(), filter: x })],
      ['update', 'nonEmptyObject', (x) => call({ ...base(), update: x })],
      ['token', 'count', (x) => call({ ...base(), token: x })],
      ['fenceField', 'path', (x) => call({ ...base(), fenceField: x })],
      ['session', 'none', (x) => call({ ...base(), session: x })],
    ];
  },
  ensureIdempotencyIndexes: () => [collectionSpec((c) => ensureIdempotencyIndexes(c as never))],
  withRetryingTransaction: () => {
    const fnOk = async () => undefined;
    return [
      ['client', 'none', (x) => withRetryingTransaction(x as never, fnOk)],
      ['fn', 'function', (x) => withRetryingTransaction(t.client, x as never)],
      ...runnerSpecs((o) => withRetryingTransaction(t.client, fnOk, o as never)),
      // Refused whatever it holds: the runner owns its session.
      ['session', 'none', (x) => withRetryingTransaction(t.client, fnOk, { session: x } as never)],
    ];
  },
};

interface MatrixRow {
  readonly primitive: string;
  readonly option: string;
  readonly value: Hostile;
  readonly accepted: boolean;
  readonly call: () => Promise<unknown>;
}

function matrixRows(): MatrixRow[] {
  const rows: MatrixRow[] = [];
  for (const [primitive, specs] of Object.entries(OPTION_SPECS)) {
    for (const [option, kind, call] of specs()) {
      const accepted: readonly Hostile[] = KINDS[kind];
      for (const value of Object.keys(HOSTILE) as Hostile[]) {
        rows.push({
          primitive,
          option,
          value,
          accepted: accepted.includes(value),
          call: () => call(HOSTILE[value]()),
        });
      }
    }
  }
  return rows;
}

const MATRIX = matrixRows();

describe('hostile input matrix: every option × every hostile value', () => {
  const refused = MATRIX.filter((row) => !row.accepted);
  const accepted = MATRIX.filter((row) => row.accepted);

  it.each(refused.map((row) => [row.primitive, row.option, row.value, row] as const))(
    '%s: %s = %s → InvalidArgumentError naming it, nothing sent',
    async (primitive, option, _value, row) => {
      t.commands.reset();
      const error = await rejectionOf(row.call());
      expect(error).toBeInstanceOf(InvalidArgumentError);
      const { primitive: named, option: namedOption } = error as InvalidArgumentError;
      expect(named).toBe(primitive);
      expect(namedOption, (error as Error).message).toSatisfy((o: string) =>
        namesOption(o, option),
      );
      expect(t.commands.names()).toEqual([]);
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_NAMES);
      expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    },
  );

  it.each(accepted.map((row) => [row.primitive, row.option, row.value, row] as const))(
    '%s: %s = %s is a legitimate value: not refused as invalid',
    async (_primitive, _option, _value, row) => {
      let error: unknown;
      try {
        await row.call();
      } catch (caught) {
        error = caught;
      }
      expect(isInvalidArgumentError(error), String(error)).toBe(false);
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_NAMES);
      expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    },
  );
});

/**
 * The keys a validator knows at one level, read from its refusal of an unknown key ("… (known:
 * a, b, c)"): the validators' own lists, not a copy that could drift.
 */
async function knownAt(call: Promise<unknown>): Promise<string[]> {
  const error = await rejectionOf(call);
  expect(error).toBeInstanceOf(InvalidArgumentError);
  const listed = /\(known: ([^)]*)\)/.exec((error as Error).message);
  expect(listed, (error as Error).message).not.toBeNull();
  return (listed?.[1] ?? '').split(', ');
}

/** Per primitive: where options nest → a call with an unknown key `zz` at that level. */
function probes(): Record<string, [prefix: string, call: () => Promise<unknown>][]> {
  const c = matrixColl;
  const zz = { zz: 1 };
  const opLog = (call: (o: Record<string, unknown>) => Promise<unknown>, base: object) =>
    [
      ['', () => call({ ...base, ...zz })],
      ['opIdLog', () => call({ ...base, opId: op, opIdLog: zz })],
    ] as [string, () => Promise<unknown>][];
  const runner = (call: (o: Record<string, unknown>) => Promise<unknown>, prefix: string) =>
    [
      [prefix.slice(0, -1), () => call(zz)],
      [`${prefix}backoff`, () => call({ backoff: zz })],
      [`${prefix}transactionOptions`, () => call({ transactionOptions: zz })],
      [
        `${prefix}transactionOptions.writeConcern`,
        () => call({ transactionOptions: { writeConcern: zz } }),
      ],
    ] as [string, () => Promise<unknown>][];
  const item = { filter: { _id: 'a' }, amount: 1 };
  const all = { field: 'stock', items: [item], client: t.client };
  const key = () => ({ key: freshKey(), fn: async () => 1 });
  const progressCall = (o: Record<string, unknown>) => applyProgress(c(), o as never);
  return {
    applyProgress: [
      ...opLog(progressCall, progress),
      ['level', () => progressCall({ ...progress, level: { ...LEVEL, ...zz } })],
      ['badges', () => progressCall({ ...progress, badges: { ...BADGES, ...zz } })],
      [
        'badges.rules.0',
        () =>
          progressCall({
            ...progress,
            badges: { ...BADGES, rules: [{ ...BADGES.rules[0], ...zz }] },
          }),
      ],
    ],
    addToSetWithCapacity: opLog((o) => addToSetWithCapacity(c(), o as never), {
      ...seats,
      capacity: 5,
    }),
    removeFromSetWithCapacity: opLog((o) => removeFromSetWithCapacity(c(), o as never), seats),
    holdPlace: [['', () => holdPlace(c(), { ...placeHold, ...zz } as never)]],
    confirmPlace: [['', () => confirmPlace(c(), { ...placeSettle, ...zz } as never)]],
    releasePlace: [['', () => releasePlace(c(), { ...placeSettle, ...zz } as never)]],
    releaseExpiredPlaces: [
      ['', () => releaseExpiredPlaces(c(), { ...placeSweep, ...zz } as never)],
    ],
    claimOnce: opLog((o) => claimOnce(c(), o as never), claim),
    guardedDecrement: opLog((o) => guardedDecrement(c(), o as never), decrement),
    holdQuantity: [['', () => holdQuantity(c(), { ...holding, ...zz } as never)]],
    confirmHold: [['', () => confirmHold(c(), { ...settling, ...zz } as never)]],
    releaseHold: [['', () => releaseHold(c(), { ...settling, ...zz } as never)]],
    releaseExpiredHolds: [['', () => releaseExpiredHolds(c(), { ...sweeping, ...zz } as never)]],
    guardedDecrementAll: [
      ['', () => guardedDecrementAll(c(), { ...all, ...zz } as never)],
      ['items.0', () => guardedDecrementAll(c(), { ...all, items: [{ ...item, ...zz }] } as never)],
      ...runner(
        (o) => guardedDecrementAll(c(), { ...all, transaction: o } as never),
        'transaction.',
      ),
    ],
    incrementOrPushArrayItem: opLog((o) => incrementOrPushArrayItem(c(), o as never), cart),
    updateWithVersion: [
      ...opLog((o) => updateWithVersion(c(), o as never), versioned),
      ['backoff', () => updateWithVersion(c(), { ...versioned, backoff: zz } as never)],
    ],
    withIdempotencyKey: [
      ['', () => withIdempotencyKey(c(), { ...key(), ...zz } as never)],
      ['wait', () => withIdempotencyKey(c(), { ...key(), wait: { timeoutMs: 1, ...zz } } as never)],
      ...runner(
        (o) => withIdempotencyKey(c(), { ...key(), client: t.client, transaction: o } as never),
        'transaction.',
      ),
    ],
    acquireLease: [['', () => acquireLease(c(), 'n', { holder: 'a', ttlMs: 1, ...zz } as never)]],
    renewLease: [['', () => renewLease(c(), 'n', { token: 1, ttlMs: 1, ...zz } as never)]],
    releaseLease: [['', () => releaseLease(c(), 'n', { token: 1, ...zz } as never)]],
    withLease: [
      ['', () => withLease(c(), 'n', async () => 1, { holder: 'a', ttlMs: 1, ...zz } as never)],
    ],
    fencedUpdate: [
      [
        '',
        () =>
          fencedUpdate(c(), {
            filter: { _id: 'd' },
            update: { $set: { a: 1 } },
            token: 1,
            ...zz,
          } as never),
      ],
    ],
    // No options: the collection is its only argument.
    ensureIdempotencyIndexes: [],
    withRetryingTransaction: runner(
      (o) => withRetryingTransaction(t.client, async () => undefined, o as never),
      '.',
    ).map(([prefix, call]) => [prefix.replace(/^\./, ''), call]),
  };
}

describe('hostile input matrix: coverage', () => {
  it('has rows for every public primitive', async () => {
    const index = await import('../src/index.js');
    const primitives = Object.entries(index)
      .filter(([name, value]) => typeof value === 'function' && !/^(is[A-Z]|[A-Z])/.test(name))
      .map(([name]) => name)
      .sort();
    expect(Object.keys(OPTION_SPECS).sort()).toEqual(primitives);
  });

  it('has rows for every option key each validator knows, at every level, and no others', async () => {
    const missing: string[] = [];
    const unknown: string[] = [];
    for (const [primitive, levels] of Object.entries(probes())) {
      const inTable = new Set(
        MATRIX.filter((row) => row.primitive === primitive).map((row) => row.option),
      );
      // Arguments, not option keys (`name`: the lease functions' second argument).
      const known = new Set(['collection', 'client', 'fn', 'session', 'name']);
      for (const [prefix, call] of levels) {
        for (const key of await knownAt(call())) {
          const option = prefix === '' ? key : `${prefix}.${key}`;
          known.add(option);
          // An array option is tabled by its first element (`badges.rules.0`, `items.0`).
          if (!inTable.has(option) && !inTable.has(`${option}.0`))
            missing.push(`${primitive}: ${option}`);
        }
      }
      for (const option of inTable) {
        // Every tabled option is known at its level, or lies inside a known one (`inc.xp`).
        const segments = option.split('.');
        const isKnown = segments.some((_, i) => known.has(segments.slice(0, i + 1).join('.')));
        if (!isKnown) unknown.push(`${primitive}: ${option}`);
      }
    }
    expect(missing).toEqual([]);
    expect(unknown).toEqual([]);
  });

  it('tables every hostile value for every option: the matrix is complete', () => {
    const values = Object.keys(HOSTILE).length;
    for (const [primitive, specs] of Object.entries(OPTION_SPECS)) {
      for (const [option] of specs()) {
        const rows = MATRIX.filter((row) => row.primitive === primitive && row.option === option);
        expect(new Set(rows.map((row) => row.value)).size, `${primitive}: ${option}`).toBe(values);
      }
    }
  });
});
