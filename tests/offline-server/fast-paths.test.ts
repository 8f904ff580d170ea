/**
 * The offline server's cheap general paths against the slow ones they replace (issue 11): the
 * no-op test of updates (`sameBytes`, whose walk now also proves a difference without
 * serializing), the deep copy of stored documents (`cloneDocument`, a spread per object), and
 * the copy renamed for mingo in one walk (`encodeCopy`, formerly `encodeValue(cloneDocument())`),
 * and pipeline updates that read the stored document instead of that copy when no stage or
 * expression of theirs writes into its input (the copy is kept for those that may).
 * Each is compared on varied inputs with what it stands for: the serialized bytes, and a
 * reference copy written the slow, obvious way in this file.
 */
import { Binary, Decimal128, type Document, Double, Int32, Long, ObjectId, serialize } from 'bson';
import { describe, expect, it, vi } from 'vitest';
import {
  decodeValue,
  encodeCopy,
  encodeName,
  encodeValue,
} from '../../offline-server/src/mingo-names.js';
import { evaluateExpression } from '../../offline-server/src/query.js';
import { applyUpdate } from '../../offline-server/src/update.js';
import { cloneDocument, getField, sameBytes } from '../../offline-server/src/values.js';

/** A document parsed from JSON: `__proto__` arrives as an own field, as js-bson gives it. */
function doc(json: string): Document {
  return JSON.parse(json) as Document;
}

function bytesEqual(a: Document, b: Document): boolean {
  return Buffer.from(serialize(a)).equals(Buffer.from(serialize(b)));
}

/** The reference deep copy: one `defineProperty` per field, as cloneDocument used to do. */
function referenceCopy(value: unknown, rename: (name: string) => string = (n) => n): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => referenceCopy(v, rename));
  if (value instanceof Date) return new Date(value.getTime());
  if (value instanceof Binary) return new Binary(Uint8Array.from(value.value()), value.sub_type);
  if ('_bsontype' in value) return value;
  const out: Document = {};
  for (const [k, v] of Object.entries(value)) {
    Object.defineProperty(out, rename(k), {
      value: referenceCopy(v, rename),
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  return out;
}

/** Same own keys in the same order, same prototypes, same leaves; no object shared. */
function expectSameShapeNoSharing(copy: unknown, original: unknown, path = '$'): void {
  if (typeof original !== 'object' || original === null) {
    expect(Object.is(copy, original), path).toBe(true);
    return;
  }
  if ('_bsontype' in original && !(original instanceof Binary)) {
    expect(copy, path).toBe(original); // immutable BSON classes may be shared
    return;
  }
  expect(copy, path).not.toBe(original);
  expect(Object.getPrototypeOf(copy), path).toBe(Object.getPrototypeOf(original));
  if (original instanceof Date) {
    expect((copy as Date).getTime(), path).toBe(original.getTime());
    return;
  }
  if (original instanceof Binary) {
    expect(Buffer.from((copy as Binary).value()).equals(Buffer.from(original.value())), path).toBe(
      true,
    );
    return;
  }
  expect(Object.keys(copy as object), path).toEqual(Object.keys(original));
  for (const k of Object.keys(original)) {
    expect(Object.hasOwn(copy as object, k), `${path}.${k}`).toBe(true);
    expectSameShapeNoSharing((copy as Document)[k], (original as Document)[k], `${path}.${k}`);
  }
}

const SAMPLES: Document[] = [
  { _id: 1, a: 1 },
  doc('{"_id":1,"__proto__":{"constructor":{"toString":[1,{"prototype":2}]}},"x":[[1,2],[3,[4]]]}'),
  doc('{"_id":"k","constructor":"c","valueOf":[{"__proto__":null}],"hasOwnProperty":{}}'),
  {
    _id: new ObjectId('64b7f0c2a1b2c3d4e5f60718'),
    n: { i: new Int32(7), d: new Double(2.5), l: Long.fromString('9007199254740993') },
    dec: Decimal128.fromString('1.10'),
    when: new Date(1_700_000_000_000),
    bin: new Binary(Buffer.from('abc'), 4),
    deep: [[[{ a: [0, -0, 1.5, 2 ** 31] }]], []],
  },
  {
    _id: 'cart',
    items: Array.from({ length: 50 }, (_, i) => ({ sku: `s${i}`, quantity: i % 3 })),
  },
];

describe('sameBytes proves a difference by its walk only where the bytes differ', () => {
  it('answers as the bytes do on mutations of varied documents', () => {
    // Each mutation is applied to a copy; the answer must be the serialized bytes' one, whether
    // the walk decides (a differing number, string or boolean) or the bytes do.
    const mutations: [string, (d: Document) => void][] = [
      ['none', () => {}],
      ['number', (d) => Object.defineProperty(d, 'z', { value: 1, enumerable: true })],
      ['int32 vs double', (d) => Object.defineProperty(d, '_id', { value: 1.5, enumerable: true })],
      ['-0', (d) => Object.defineProperty(d, '_id', { value: -0, enumerable: true })],
    ];
    for (const sample of SAMPLES) {
      for (const [name, mutate] of mutations) {
        const other = cloneDocument(sample);
        mutate(other);
        expect(sameBytes(sample, other), name).toBe(bytesEqual(sample, other));
      }
    }
  });

  it('a proven difference decides even beside pairs only the bytes can settle', () => {
    const cases: [Document, Document][] = [
      // undefined and null serialize alike: unproven, and then the bytes say "same"...
      [
        { a: undefined, b: 1 },
        { a: null, b: 1 },
      ],
      // ...but a differing number elsewhere proves the difference.
      [
        { a: undefined, b: 1 },
        { a: null, b: 2 },
      ],
      [
        { a: [undefined, 'x'], b: Long.fromNumber(1) },
        { a: [null, 'y'], b: Long.fromNumber(1) },
      ],
      // A lone surrogate is written as U+FFFD: two different JS strings, the same bytes.
      [{ s: '\uD800' }, { s: '\uD801' }],
      [
        { s: 'a\uDC00', n: 1 },
        { s: 'a\uDFFF', n: 1 },
      ],
      [{ s: '😀' }, { s: '😁' }],
      [{ t: true }, { t: false }],
      [{ t: true }, { t: 1 }],
      [{ n: 1 }, { n: new Int32(1) }],
      [{ n: 1 }, { n: new Double(1) }],
      [{ n: 0 }, { n: -0 }],
      [{ n: Number.NaN }, { n: Number.NaN }],
      [
        doc('{"__proto__":{"a":1},"constructor":[1,2]}'),
        doc('{"__proto__":{"a":1},"constructor":[1,3]}'),
      ],
      [
        doc('{"__proto__":{"a":1},"constructor":[1,2]}'),
        doc('{"__proto__":{"a":1},"constructor":[1,2]}'),
      ],
      [
        { a: 1, b: 2 },
        { b: 2, a: 1 },
      ],
      [{ d: Decimal128.fromString('1.0') }, { d: Decimal128.fromString('1.00') }],
    ];
    const answers = new Set<boolean>();
    for (const [a, b] of cases) {
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        const bytes = bytesEqual(x, y);
        answers.add(bytes);
        expect(sameBytes(x, y), `${JSON.stringify(x)} / ${JSON.stringify(y)}`).toBe(bytes);
      }
    }
    expect(answers).toEqual(new Set([true, false]));
    expect(sameBytes({ s: '\uD800' }, { s: '\uD801' })).toBe(true);
  });
});

describe('cloneDocument copies as the field-by-field copy did', () => {
  it('same keys, order, prototypes and bytes, and shares no object with the original', () => {
    for (const sample of SAMPLES) {
      const copy = cloneDocument(sample);
      const reference = referenceCopy(sample) as Document;
      expectSameShapeNoSharing(copy, sample);
      expect(Object.keys(copy)).toEqual(Object.keys(reference));
      expect(bytesEqual(copy, reference)).toBe(true);
    }
  });

  it('keeps __proto__ an own field, never the prototype, and writing the copy spares the original', () => {
    const original = doc('{"__proto__":{"polluted":1},"a":{"b":[{"c":1}]}}');
    const copy = cloneDocument(original);
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.hasOwn(copy, '__proto__')).toBe(true);
    expect(({} as Document).polluted).toBeUndefined();
    copy.a.b[0].c = 2;
    copy.a.b.push(3);
    expect(original.a.b).toEqual([{ c: 1 }]);
  });
});

describe('encodeCopy: the renamed copy mingo gets, in one walk', () => {
  it('equals encodeValue(cloneDocument(doc)) and shares nothing with the document', () => {
    for (const sample of SAMPLES) {
      const fast = encodeCopy(sample);
      const slow = encodeValue(cloneDocument(sample));
      expect(Object.keys(fast)).toEqual(Object.keys(referenceCopy(sample, encodeName) as Document));
      expectSameShapeNoSharing(fast, slow);
      expect(Object.keys(fast)).toEqual(Object.keys(slow));
      expectSameShapeNoSharing(decodeValue(fast), sample);
    }
  });

  it('renames a special name after ordinary ones in place, keeping the field order', () => {
    const encoded = encodeValue(doc('{"a":1,"b":{"x":2},"constructor":3,"d":{"toString":4}}'));
    expect(Object.keys(encoded)).toEqual(['a', 'b', '\u0000constructor', 'd']);
    expect(Object.keys(encoded.d)).toEqual(['\u0000toString']);
    const plain = { a: 1, b: { x: 2 } };
    expect(encodeValue(plain)).toBe(plain); // nothing to rename: nothing copied
    expect(decodeValue(plain)).toBe(plain);
  });

  it('a pipeline update never writes through to the stored document or its sub-documents', () => {
    const stored = doc('{"_id":1,"__proto__":{"k":[1,{"m":2}]},"s":{}}');
    stored.s.t = Long.fromNumber(5);
    const before = cloneDocument(stored);
    const { doc: result, changed } = applyUpdate(stored, [
      { $set: { 's.u': 1, '__proto__.k': [9] } },
      { $set: { 's.t': { $add: ['$s.t', 1] } } },
    ]);
    expect(changed).toBe(true);
    expect(bytesEqual(stored, before)).toBe(true);
    expect(result.s).not.toBe(stored.s);
    const noop = applyUpdate(stored, [{ $replaceWith: '$$ROOT' }]);
    expect(noop.changed).toBe(false);
    expect(noop.doc).not.toBe(stored);
  });
});

describe('pipeline updates that leave their input intact read the stored document, not a copy', () => {
  const cart = (): Document => ({
    _id: 'c',
    items: [
      { sku: 'a', n: 1 },
      { sku: 'b', n: 1 },
    ],
    meta: { at: new Date(0), tags: ['x'] },
  });

  it('computes what the copy gave, shares the parts it kept and writes into none of them', () => {
    const stored = cart();
    const before = cloneDocument(stored);
    const { doc: result, changed } = applyUpdate(stored, [
      {
        $set: {
          items: {
            $concatArrays: [
              { $slice: ['$items', 1] },
              [{ $mergeObjects: [{ $arrayElemAt: ['$items', 1] }, { n: 2 }] }],
            ],
          },
        },
      },
      { $addFields: { count: { $size: '$items' }, first: { $arrayElemAt: ['$items', 0] } } },
    ]);
    expect(changed).toBe(true);
    expect(result).toEqual({
      _id: 'c',
      items: [
        { sku: 'a', n: 1 },
        { sku: 'b', n: 2 },
      ],
      meta: { at: new Date(0), tags: ['x'] },
      count: 2,
      first: { sku: 'a', n: 1 },
    });
    expect(bytesEqual(stored, before)).toBe(true);
    expect(result.items[0]).toBe(stored.items[0]);
    expect(result.meta).toBe(stored.meta);

    const noop = applyUpdate(stored, [
      { $replaceWith: '$$ROOT' },
      { $replaceRoot: { newRoot: '$$ROOT' } },
    ]);
    expect(noop.changed).toBe(false);
    expect(noop.doc).not.toBe(stored); // `_id` first: a new top level
    expect(noop.doc.items).toBe(stored.items);
  });

  it('a later update of the new version leaves the version it shares parts with intact', () => {
    const stored = cart();
    const before = cloneDocument(stored);
    const { doc: next } = applyUpdate(stored, [{ $set: { seen: true } }]);
    expect(next.items).toBe(stored.items);
    applyUpdate(next, { $set: { 'items.0.n': 9, 'meta.tags.0': 'y' } });
    applyUpdate(next, { $push: { items: { sku: 'z' } } });
    applyUpdate(next, { $inc: { 'items.1.n': 1 } });
    applyUpdate(next, [{ $set: { 'meta.tags': [], 'items.n': 0 } }, { $unset: 'items.sku' }]);
    applyUpdate(next, [{ $replaceWith: '$meta' }, { $set: { 'tags.x': 1 } }]);
    expect(bytesEqual(stored, before)).toBe(true);
  });

  it('pipelines that may write into their input still get a copy: dotted names, $unset, $project, date operators on a field path', () => {
    const stored: Document = {
      _id: 1,
      a: { b: 1, c: { d: 2 } },
      when: { date: new Date(Date.UTC(2024, 0, 31)), format: '%Y' },
      parts: { year: 2024, month: 2, day: 31 },
    };
    const before = cloneDocument(stored);
    const pipelines: Document[][] = [
      [{ $replaceWith: '$a' }, { $set: { 'c.e': 3 } }],
      [{ $set: { x: '$a' } }, { $addFields: { 'x.b': 5 } }],
      [{ $set: { 'a.c.d': { $add: ['$a.c.d', 1] } } }],
      [{ $unset: ['a.c.d', 'parts.day'] }],
      [{ $project: { 'a.b': 0 } }],
      [{ $set: { y: { $dateToString: '$when' } } }],
      [{ $set: { y: { $dateFromParts: '$parts' } } }],
    ];
    for (const pipeline of pipelines) {
      applyUpdate(stored, pipeline);
      expect(bytesEqual(stored, before), JSON.stringify(pipeline)).toBe(true);
    }
  });

  it('stages run without an aggregator answer as the aggregator does, results and errors alike', () => {
    // Statement constants (`variables`, even none) take the aggregator; without them, the
    // stages of a pipeline that leaves its input intact run one after the other.
    const outcome = (variables?: Document) => (pipeline: Document[]) => {
      try {
        return applyUpdate(cart(), pipeline, variables === undefined ? {} : { variables }).doc;
      } catch (error) {
        const { code, message } = error as { code: number; message: string };
        return { code, message };
      }
    };
    const pipelines: Document[][] = [
      [
        { $set: {} },
        { $addFields: { n: { $size: '$items' }, gone: '$$REMOVE', meta: '$$REMOVE' } },
      ],
      [{ $replaceWith: { $mergeObjects: ['$meta', { _id: '$_id' }] } }, { $set: { k: '$tags' } }],
      [{ $replaceRoot: { newRoot: { _id: '$_id', first: { $first: '$items' } } } }],
      [{ $set: { _id: 'other' } }],
      [{ $replaceWith: '$items' }],
      [{ $replaceWith: 1 }],
      [{ $replaceRoot: { newRoot: '$missing' } }],
      [{ $set: { a: { $divide: [1, 0] } } }, { $replaceWith: 'x' }],
      [{ $set: { a: { $noSuchOperator: 1 } } }],
      [{ $set: { a: '$$undefinedVariable' } }],
    ];
    for (const pipeline of pipelines) {
      expect(outcome()(pipeline), JSON.stringify(pipeline)).toEqual(outcome({})(pipeline));
    }
  });

  it('$$NOW is one instant for the whole pipeline wherever it is, and a $literal keeps the string', () => {
    // mingo reads the clock (Date.now) afresh for each evaluation; the server pins one value.
    let tick = 1_000;
    const now = vi.spyOn(Date, 'now').mockImplementation(() => (tick += 1_000));
    try {
      const { doc: result } = applyUpdate({ _id: 1 }, [
        { $set: { a: '$$NOW' } },
        { $replaceWith: { $mergeObjects: ['$$ROOT', { b: ['$$NOW'], c: { $literal: '$$NOW' } }] } },
      ]);
      expect(result.a).toBeInstanceOf(Date);
      expect(result.b).toEqual([result.a]);
      expect(result.c).toBe('$$NOW');
      const { doc: plain } = applyUpdate({ _id: 1 }, [{ $set: { c: { $literal: '$$NOW' } } }]);
      expect(plain).toEqual({ _id: 1, c: '$$NOW' });
    } finally {
      now.mockRestore();
    }
  });

  it('renames back a special name an expression makes in a document that has none', () => {
    const stored = cart();
    const { doc: result } = applyUpdate(stored, [
      doc('{"$set":{"x":{"constructor":"$_id","__proto__":{"$literal":{"toString":1}}}}}'),
    ]);
    expect(Object.keys(result.x)).toEqual(['constructor', '__proto__']);
    expect(Object.getPrototypeOf(result.x)).toBe(Object.prototype);
    expect(result.x.constructor).toBe('c');
    expect(Object.keys(getField(result.x, '__proto__') as Document)).toEqual(['toString']);
    expect(result.items).toBe(stored.items);
  });

  it('a document with a special name goes through the renamed copy and keeps its real names', () => {
    const stored = doc('{"_id":1,"a":{"constructor":{"k":1}},"b":[{"toString":2}]}');
    const before = cloneDocument(stored);
    const { doc: result } = applyUpdate(stored, [{ $set: { c: '$a.constructor.k', d: '$b' } }]);
    expect(result).toEqual(
      doc('{"_id":1,"a":{"constructor":{"k":1}},"b":[{"toString":2}],"c":1,"d":[{"toString":2}]}'),
    );
    expect(Object.keys(result.d[0])).toEqual(['toString']);
    expect(result.a).not.toBe(stored.a);
    expect(bytesEqual(stored, before)).toBe(true);
  });
});

describe('a document checked once for names to rename', () => {
  // unchangingDocumentHasNoRenamedName remembers the answer per document; encodeDocument (the
  // projection's expressions) skips the walk only for a document remembered as clean.
  it('a document with special names is never remembered as clean: the projection after the update still renames', () => {
    const stored = doc('{"_id":1,"constructor":{"k":1},"__proto__":{"x":2},"n":3}');
    // The update checks the document (it has special names: the renamed copy path).
    applyUpdate(stored, [{ $set: { m: '$n' } }]);
    applyUpdate(stored, [{ $set: { m: '$n' } }]);
    // The projection's expression reads the special fields of the same document.
    expect(evaluateExpression(stored, '$constructor.k')).toBe(1);
    expect(evaluateExpression(stored, '$__proto__.x')).toBe(2);
    const root = evaluateExpression(stored, '$$ROOT') as Document;
    expect(Object.keys(root)).toEqual(['_id', 'constructor', '__proto__', 'n']);
    expect(Object.hasOwn(root, '__proto__')).toBe(true);
  });

  it('a clean document is read as it is, before and after the update remembers it', () => {
    const stored = doc('{"_id":1,"a":{"b":[{"c":1},{"c":2}]},"n":3}');
    const first = evaluateExpression(stored, { $add: ['$n', 1] });
    const { doc: next } = applyUpdate(stored, [{ $set: { m: { $add: ['$n', 1] } } }]);
    expect(next.m).toBe(4);
    expect(evaluateExpression(stored, { $add: ['$n', 1] })).toBe(first);
    expect(evaluateExpression(stored, '$a.b.c')).toEqual([1, 2]);
    expect(evaluateExpression(next, '$$ROOT')).toEqual(
      doc('{"_id":1,"a":{"b":[{"c":1},{"c":2}]},"n":3,"m":4}'),
    );
  });
});
