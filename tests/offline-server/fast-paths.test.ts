/**
 * The offline server's cheap general paths against the slow ones they replace (issue 11): the
 * no-op test of updates (`sameBytes`, whose walk now also proves a difference without
 * serializing), the deep copy of stored documents (`cloneDocument`, a spread per object), and
 * the copy renamed for mingo in one walk (`encodeCopy`, formerly `encodeValue(cloneDocument())`).
 * Each is compared on varied inputs with what it stands for: the serialized bytes, and a
 * reference copy written the slow, obvious way in this file.
 */
import { Binary, Decimal128, type Document, Double, Int32, Long, ObjectId, serialize } from 'bson';
import { describe, expect, it } from 'vitest';
import {
  decodeValue,
  encodeCopy,
  encodeName,
  encodeValue,
} from '../../offline-server/src/mingo-names.js';
import { applyUpdate } from '../../offline-server/src/update.js';
import { cloneDocument, sameBytes } from '../../offline-server/src/values.js';

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
