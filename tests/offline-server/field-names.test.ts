/**
 * `__proto__`, `constructor`, `prototype` and other `Object.prototype` names as ordinary field
 * names (manual, core/document "Field Names"), run against the server's own functions in this
 * process: the conformance file talks to the server over TCP, and the server runs in vitest's
 * main process (tests/support/global-setup.ts), where a test fork cannot see its prototypes.
 * After every test this process's Object.prototype must be exactly as it was.
 */
import { type Document, serialize } from 'bson';
import { afterEach, describe, expect, it } from 'vitest';
import { runPipeline } from '../../offline-server/src/aggregate.js';
import { indexKeys } from '../../offline-server/src/index-keys.js';
import {
  applyProjection,
  compareBySort,
  compileFilter,
  evaluateExpression,
} from '../../offline-server/src/query.js';
import { applyUpdate, upsertSeedDocument } from '../../offline-server/src/update.js';
import { cloneDocument, compareValues, getPathValues } from '../../offline-server/src/values.js';
import { OpCode, parseFrame } from '../../offline-server/src/wire.js';
import { serverError } from './helpers.js';

const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

afterEach(() => {
  expect(({} as Document).isAdmin).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeNames);
});

/** JSON.parse makes `__proto__` an own key, as js-bson's deserializer does. */
const doc = (json: string): Document => JSON.parse(json) as Document;
/** JSON text shows own `__proto__` keys and field order. */
const text = (value: unknown): string => JSON.stringify(value);
const apply = (d: Document, update: Document | Document[], options = {}) =>
  applyUpdate(d, update, options).doc;

describe('update operators on special names', () => {
  it('$set through a missing __proto__ creates the field instead of writing Object.prototype', () => {
    const out = apply({ _id: 1 }, doc('{"$set":{"__proto__.isAdmin":1}}'));
    expect(text(out)).toBe('{"_id":1,"__proto__":{"isAdmin":1}}');
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
  });

  it('a top-level $set of __proto__ stores a field and keeps the prototype', () => {
    const out = apply({ _id: 1 }, doc('{"$set":{"__proto__":{"isAdmin":1}}}'));
    expect(text(out)).toBe('{"_id":1,"__proto__":{"isAdmin":1}}');
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
  });

  it('updates an existing __proto__ field without losing it in the copy', () => {
    const out = apply(doc('{"_id":1,"__proto__":{"a":1}}'), doc('{"$inc":{"__proto__.a":1}}'));
    expect(text(out)).toBe('{"_id":1,"__proto__":{"a":2}}');
  });

  it('constructor and toString a document lacks are missing: $inc and $push create them', () => {
    const out = apply(
      { _id: 1 },
      {
        $inc: { toString: 1, 'constructor.n': 1 },
        $push: { valueOf: 1, 'prototype.list': 2 },
      },
    );
    expect(text(out)).toBe(
      '{"_id":1,"constructor":{"n":1},"prototype":{"list":[2]},"toString":1,"valueOf":[1]}',
    );
  });

  it('$unset and $rename move special names; $unset of a missing one changes nothing', () => {
    const before = doc('{"_id":1,"__proto__":{"a":1},"x":2}');
    const renamed = apply(before, { $rename: { x: 'constructor', '__proto__.a': 'prototype' } });
    expect(text(renamed)).toBe('{"_id":1,"__proto__":{},"constructor":2,"prototype":1}');
    const unset = applyUpdate(before, { $unset: { toString: '', valueOf: '' } });
    expect(text(unset.doc)).toBe(text(before));
    const unsetOwn = apply(before, doc('{"$unset":{"__proto__":""}}'));
    expect(text(unsetOwn)).toBe('{"_id":1,"x":2}');
  });

  it('the upsert seed builds __proto__ paths as fields', () => {
    const seed = upsertSeedDocument(doc('{"__proto__.tenant":"t","constructor":{"$eq":1}}'));
    expect(text(seed)).toBe('{"__proto__":{"tenant":"t"},"constructor":1}');
    expect(Object.getPrototypeOf(seed)).toBe(Object.prototype);
  });

  it('pipeline updates read and write special names', () => {
    const out = apply(doc('{"_id":1,"__proto__":{"n":1}}'), [
      { $set: { '__proto__.n': { $add: ['$__proto__.n', 1] }, c: { $getField: 'constructor' } } },
      { $set: { prototype: '$$ROOT.__proto__' } },
    ]);
    expect(text(out)).toBe('{"_id":1,"__proto__":{"n":2},"prototype":{"n":2}}');
  });

  it('cloneDocument keeps an own __proto__ field', () => {
    const copy = cloneDocument(doc('{"a":{"__proto__":{"b":1}}}'));
    expect(text(copy)).toBe('{"a":{"__proto__":{"b":1}}}');
    expect(Object.getPrototypeOf(copy.a)).toBe(Object.prototype);
  });
});

describe('queries, projections, sorts and index keys', () => {
  it('filters read own fields only', () => {
    const plain = { _id: 1 };
    expect(compileFilter({ toString: { $exists: true } })(plain)).toBe(false);
    expect(compileFilter({ constructor: null })(plain)).toBe(true);
    expect(compileFilter(doc('{"__proto__.isAdmin":{"$exists":true}}'))(plain)).toBe(false);
    expect(compileFilter(doc('{"__proto__.isAdmin":1}'))(doc('{"__proto__":{"isAdmin":1}}'))).toBe(
      true,
    );
    expect(compileFilter({ $expr: { $eq: ['$constructor', 'x'] } })({ constructor: 'x' })).toBe(
      true,
    );
  });

  it('projections copy own __proto__ fields and never invent inherited ones', () => {
    const d = doc('{"_id":1,"__proto__":{"a":1},"b":2}');
    expect(text(applyProjection(d, { b: 0 }))).toBe('{"_id":1,"__proto__":{"a":1}}');
    expect(text(applyProjection(d, doc('{"__proto__.a":1}')))).toBe(
      '{"_id":1,"__proto__":{"a":1}}',
    );
    expect(text(applyProjection(d, { constructor: 1, toString: 1 }))).toBe('{"_id":1}');
    expect(text(applyProjection(d, { constructor: '$__proto__.a' }))).toBe(
      '{"_id":1,"constructor":1}',
    );
  });

  it('sorts, distinct values and index keys treat a missing constructor as missing', () => {
    const docs: Document[] = [
      { _id: 1, constructor: 'b' },
      { _id: 2 },
      { _id: 3, constructor: 'a' },
    ];
    expect([...docs].sort(compareBySort({ constructor: 1 })).map((d) => d._id)).toEqual([2, 3, 1]);
    expect(getPathValues({ _id: 1 }, 'constructor.name')).toEqual([]);
    expect(indexKeys({ _id: 1 }, { constructor: 1 })).toEqual(
      indexKeys({ _id: 1, constructor: null }, { constructor: 1 }),
    );
    expect(indexKeys(doc('{"__proto__":{"k":1}}'), { '__proto__.k': 1 })).toEqual(
      indexKeys({ k: 1 }, { k: 1 }),
    );
  });

  it('documents order by field name whether or not mingo renamed it', () => {
    expect(compareValues({ a: 1 }, { constructor: 1 })).toBeLessThan(0);
    expect(
      evaluateExpression({}, { $lt: [{ $literal: { a: 1 } }, { $literal: { constructor: 1 } }] }),
    ).toBe(true);
  });
});

describe('expressions and aggregation through mingo', () => {
  it('field paths, $getField and $objectToArray see real names', () => {
    const d = doc('{"_id":1,"__proto__":{"isAdmin":1},"constructor":"c"}');
    expect(evaluateExpression(d, '$__proto__.isAdmin')).toBe(1);
    expect(evaluateExpression(d, { $getField: 'constructor' })).toBe('c');
    expect(evaluateExpression({ _id: 1 }, { $getField: 'constructor' })).toBeUndefined();
    expect(evaluateExpression({ _id: 1 }, '$toString')).toBeUndefined();
    expect(evaluateExpression(d, { $objectToArray: '$$ROOT' })).toEqual([
      { k: '_id', v: 1 },
      { k: '__proto__', v: { isAdmin: 1 } },
      { k: 'constructor', v: 'c' },
    ]);
    const built = evaluateExpression({}, { $arrayToObject: [[['__proto__', { isAdmin: 1 }]]] });
    expect(text(built)).toBe('{"__proto__":{"isAdmin":1}}');
  });

  it('every Object.prototype name is read at every place of a path or key, and other names as written', () => {
    // encodeExpression and encodeValue skip, by one regular expression, the strings and keys
    // with no special name (mingo-names.ts): each special name in each position must still be
    // renamed, and a name that only contains one must not be.
    for (const name of [...prototypeNames, 'prototype']) {
      const d = JSON.parse(
        `{"_id":1,${JSON.stringify(name)}:{"x":{${JSON.stringify(name)}:7}},"a":{${JSON.stringify(name)}:8}}`,
      ) as Document;
      expect(evaluateExpression(d, `$${name}.x.${name}`), name).toBe(7);
      expect(evaluateExpression(d, `$a.${name}`), name).toBe(8);
      expect(evaluateExpression(d, { $let: { vars: { v: '$a' }, in: `$$v.${name}` } })).toBe(8);
      const built = evaluateExpression(d, { [name]: `$a.${name}`, [`a${name}`]: 1 });
      expect(text(built), name).toBe(`{${JSON.stringify(name)}:8,"a${name}":1}`);
      const written = apply(d, [{ $set: { [`a.${name}`]: 9, [`${name}x`]: 1 } }]);
      expect(text(written.a), name).toBe(`{${JSON.stringify(name)}:9}`);
      expect(Object.hasOwn(written, `${name}x`), name).toBe(true);
    }
    const d = { _id: 1, a: { xconstructor: 1, constructorx: 2, toStringy: 3 } };
    expect(evaluateExpression(d, '$a')).toEqual(d.a);
    expect(evaluateExpression(d, '$a.xconstructor')).toBe(1);
    expect(evaluateExpression(d, '$a.constructorx')).toBe(2);
  });

  it('aggregate stages keep, group by, count into and unwind into special names', () => {
    const docs = [
      doc('{"_id":1,"__proto__":{"isAdmin":1},"constructor":"a","prototype":[1,2]}'),
      doc('{"_id":2,"constructor":"a"}'),
    ];
    expect(text(runPipeline(docs, [{ $match: { '__proto__.isAdmin': 1 } }]))).toBe(text([docs[0]]));
    expect(runPipeline(docs, [{ $group: { _id: '$constructor', toString: { $sum: 1 } } }])).toEqual(
      [{ _id: 'a', toString: 2 }],
    );
    expect(text(runPipeline(docs, [{ $count: 'constructor' }]))).toBe('[{"constructor":2}]');
    expect(
      text(
        runPipeline(docs, [
          { $unwind: { path: '$prototype', includeArrayIndex: 'valueOf' } },
          { $project: { _id: 0, prototype: 1, valueOf: 1 } },
        ]),
      ),
    ).toBe('[{"prototype":1,"valueOf":0},{"prototype":2,"valueOf":1}]');
    expect(text(runPipeline(docs, [{ $unset: '__proto__' }, { $limit: 1 }]))).toBe(
      '[{"_id":1,"constructor":"a","prototype":[1,2]}]',
    );
    expect(
      text(runPipeline(docs, [{ $sort: { '__proto__.isAdmin': -1 } }, { $project: { _id: 1 } }])),
    ).toBe('[{"_id":1},{"_id":2}]');
  });

  it('refuses, naming the field, a stage whose field arguments it does not model', () => {
    const error = serverError(() =>
      runPipeline(
        [{ _id: 1 }],
        [{ $densify: { field: 'constructor', range: { step: 1, bounds: 'full' } } }],
      ),
    );
    expect(error.message).toContain("'constructor'");
    expect(error.message).toContain('$densify');
  });
});

describe('wire', () => {
  // OP_MSG (mongodb-wire-protocol "Kind 1: Document Sequence"): the identifier names a command
  // field; one named `__proto__` is that field, not the command object's prototype.
  it('an OP_MSG document sequence named __proto__ becomes an own field of the command', () => {
    const body = Buffer.from(serialize({ insert: 'c', $db: 'd' }));
    const item = Buffer.from(serialize({ _id: 1 }));
    const name = Buffer.from('__proto__\0');
    const sequence = Buffer.alloc(4);
    sequence.writeInt32LE(4 + name.length + item.length);
    const payload = Buffer.concat([
      Buffer.from([0, 0, 0, 0]), // flags
      Buffer.from([0]),
      body,
      Buffer.from([1]),
      sequence,
      name,
      item,
    ]);
    const header = Buffer.alloc(16);
    header.writeInt32LE(16 + payload.length, 0);
    header.writeInt32LE(7, 4);
    header.writeInt32LE(OpCode.MSG, 12);
    const { command } = parseFrame(Buffer.concat([header, payload]));
    expect(Object.getPrototypeOf(command)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(command, '__proto__')?.value).toEqual([{ _id: 1 }]);
  });
});
