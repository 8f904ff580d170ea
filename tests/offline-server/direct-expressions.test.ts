/**
 * The offline server's direct expression evaluator (offline-server/src/expressions.ts) against
 * the general path it stands in front of (mingo with the server's overrides and the renaming of
 * mingo-names.ts): wherever `tryEvaluate` answers, its answer is the general path's, value and
 * BSON type (int32, double, long and decimal told apart, missing told from null, field order
 * kept), and the general path raises no error there. The same for the pipeline update stages it
 * runs (`runStagesDirectly` against `runPipelineThroughMingo`). Checked on random expressions of
 * its grammar mixed with operators it does not cover, on random documents, and on targeted
 * cases for each operator.
 */
import { fc, test as fcTest } from '@fast-check/vitest';
import { Decimal128, type Document, Double, Int32, Long, ObjectId, serialize } from 'bson';
import { describe, expect, it } from 'vitest';
import { BAIL, tryEvaluate } from '../../offline-server/src/expressions.js';
import { evaluateExpressionThroughMingo } from '../../offline-server/src/query.js';
import { runPipelineThroughMingo, runStagesDirectly } from '../../offline-server/src/update.js';

function bytesOf(value: unknown): string {
  return Buffer.from(serialize({ v: value })).toString('hex');
}

/**
 * Whether two results are the same: the same structure of Object objects and arrays (own keys
 * in the same order, missing distinct from null) with leaves of the same BSON bytes.
 */
function sameResult(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => sameResult(v, b[i]));
  }
  const plainA =
    typeof a === 'object' && a !== null && Object.getPrototypeOf(a) === Object.prototype;
  const plainB =
    typeof b === 'object' && b !== null && Object.getPrototypeOf(b) === Object.prototype;
  if (plainA || plainB) {
    if (!plainA || !plainB) return false;
    const ka = Object.keys(a as Document);
    const kb = Object.keys(b as Document);
    if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
    return ka.every((k) => sameResult((a as Document)[k], (b as Document)[k]));
  }
  return bytesOf(a) === bytesOf(b);
}

/** The general path's answer, or the error it raises. */
function general(expr: unknown, doc: Document): { value: unknown } | { error: unknown } {
  try {
    return { value: evaluateExpressionThroughMingo(doc, expr) };
  } catch (error) {
    return { error };
  }
}

function expectSameAsGeneral(expr: unknown, doc: Document): unknown {
  const direct = tryEvaluate(expr, doc);
  if (direct === BAIL) return BAIL;
  const expected = general(expr, doc);
  expect(expected, 'the general path raises no error').toHaveProperty('value');
  const value = (expected as { value: unknown }).value;
  expect(sameResult(direct, value), `${JSON.stringify(expr)} on ${JSON.stringify(doc)}`).toBe(true);
  return direct;
}

/** A document from entries, special names (`__proto__`) as own fields. */
function docOf(entries: [string, unknown][]): Document {
  const out: Document = {};
  for (const [k, v] of entries) {
    Object.defineProperty(out, k, {
      value: v,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  return out;
}

/** `$cond`'s object form (a `then` key written literally reads as a thenable to the linter). */
function condObject(ifExpr: unknown, thenExpr: unknown, elseExpr: unknown): Document {
  return docOf([
    ['if', ifExpr],
    ['then', thenExpr],
    ['else', elseExpr],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Generators

const numberArb = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(2147483647, -2147483648, 2147483646, 1.5, -0, 0, Number.NaN, Infinity, -Infinity),
  fc.double(),
  fc.constantFrom(
    Long.fromNumber(0),
    Long.fromNumber(1),
    Long.fromNumber(-1),
    Long.MAX_VALUE,
    Long.fromString('9007199254740993'),
  ),
  fc
    .constantFrom('0', '-0', '1', '1.10', '0.20', 'NaN', '-Infinity', '1E+6144', '0E-10')
    .map((s) => Decimal128.fromString(s)),
  fc.constantFrom(new Int32(0), new Int32(5), new Double(0), new Double(2.5)),
);

const scalarArb = fc.oneof(
  numberArb,
  fc.constantFrom('', 'x', 'abc', '$notAPath', 'constructor'),
  fc.boolean(),
  fc.constant(null),
  fc.constant(new Date(0)),
  fc.constant(ObjectId.createFromHexString('0123456789abcdef01234567')),
);

const keyArb = fc.constantFrom('a', 'b', 'c', 'a', 'b', '__proto__', 'constructor');

const valueArb: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarArb,
    tie('object'),
    fc.array(tie('value'), { maxLength: 3 }),
  ),
  object: fc
    .array(fc.tuple(keyArb, tie('value')), { maxLength: 4 })
    .map((entries) => docOf(entries as [string, unknown][])),
})).value;

const documentArb = fc
  .array(fc.tuple(keyArb, valueArb), { maxLength: 4 })
  .map((entries) => docOf([['_id', 1], ...entries]));

const pathArb = fc.constantFrom(
  '$a',
  '$b',
  '$c',
  '$a.b',
  '$a.c',
  '$b.a.c',
  '$missing',
  '$missing.x',
  '$$ROOT',
  '$$CURRENT',
  '$$ROOT.a',
  '$$CURRENT.b.a',
  '$a.0',
  '$constructor',
  '$a.__proto__',
  '$',
  '$a..b',
  '$$NOW',
  '$$REMOVE',
);

const constantArb = fc.oneof(
  numberArb,
  fc.constantFrom('', 'x', 'abc'),
  fc.boolean(),
  fc.constant(null),
);

const COMPARISONS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte'] as const;

const exprArb: fc.Arbitrary<unknown> = fc.letrec((tie) => {
  const e = tie('expr');
  const args = (min: number, max: number) => fc.array(e, { minLength: min, maxLength: max });
  const op = (name: string, arg: fc.Arbitrary<unknown>) => arg.map((a) => ({ [name]: a }));
  return {
    expr: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      constantArb,
      pathArb,
      tie('operator'),
    ),
    operator: fc.oneof(
      op('$literal', fc.oneof(constantArb, fc.constantFrom('$a', { a: 1 }, [1, '$a']))),
      op('$cond', args(3, 3)),
      fc.tuple(e, e, e).map(([i, t, el]) => ({ $cond: condObject(i, t, el) })),
      op('$and', args(0, 3)),
      op('$or', args(0, 3)),
      op('$not', fc.oneof(args(1, 1), e)),
      op('$isNumber', fc.oneof(args(1, 1), e)),
      fc.tuple(fc.constantFrom(...COMPARISONS), args(2, 2)).map(([name, a]) => ({ [name]: a })),
      op('$add', args(0, 3)),
      op('$ifNull', args(2, 3)),
      op('$mergeObjects', args(0, 3)),
      fc
        .array(fc.tuple(fc.constantFrom('x', 'y', 'a'), e), { minLength: 1, maxLength: 2 })
        .map((entries) => docOf(entries)),
      args(0, 2),
      // Operators the evaluator leaves to mingo.
      op('$size', e),
      op('$concat', args(1, 2)),
      op('$toString', e),
      op('$cmp', args(2, 2)),
      op('$multiply', args(1, 2)),
    ),
  };
}).expr;

// ---------------------------------------------------------------------------------------------

describe('the direct evaluator answers as the general path or not at all', () => {
  let answered = 0;
  fcTest.prop([exprArb, documentArb], { numRuns: 3000 })(
    'random expressions on random documents',
    (expr, doc) => {
      if (expectSameAsGeneral(expr, doc) !== BAIL) answered++;
    },
  );
  it('the property is not vacuous: the evaluator answered many of them', () => {
    expect(answered).toBeGreaterThan(500);
  });

  fcTest.prop([exprArb, exprArb, documentArb], { numRuns: 1000 })(
    'random $set, $replaceWith and $replaceRoot update stages',
    (x, y, doc) => {
      const pipelines: Document[][] = [
        [{ $set: { x, a: y } }],
        [{ $addFields: { b: x } }, { $replaceWith: { $mergeObjects: ['$$ROOT', { y }] } }],
        [
          {
            $replaceRoot: {
              newRoot: { $cond: [x, { $mergeObjects: ['$$ROOT', { y }] }, '$$ROOT'] },
            },
          },
        ],
      ];
      for (const pipeline of pipelines) {
        const direct = runStagesDirectly(pipeline, doc);
        if (direct === BAIL) continue;
        const expected = runPipelineThroughMingo(doc, pipeline, undefined);
        expect(expected).toHaveLength(1);
        expect(sameResult(direct, expected[0]), JSON.stringify(pipeline)).toBe(true);
      }
    },
  );
});

describe('each operator, against the general path', () => {
  const doc = docOf([
    ['_id', 1],
    ['i', 2147483647],
    ['n', -2147483648],
    ['d', 1.5],
    ['z', 0],
    ['nz', -0],
    ['nan', Number.NaN],
    ['l', Long.fromNumber(5)],
    ['l0', Long.fromNumber(0)],
    ['lmax', Long.MAX_VALUE],
    ['dec', Decimal128.fromString('1.10')],
    ['dec0', Decimal128.fromString('0')],
    ['s', 'text'],
    ['e', ''],
    ['nul', null],
    ['arr', [1, 2]],
    ['emptyArr', []],
    ['obj', { p: 1, q: { r: 2 } }],
    ['emptyObj', {}],
  ]);
  const check = (expr: unknown, expected: unknown) => {
    const direct = expectSameAsGeneral(expr, doc);
    expect(direct).not.toBe(BAIL);
    expect(bytesOf(direct)).toBe(bytesOf(expected));
  };
  const bails = (expr: unknown) => expect(tryEvaluate(expr, doc)).toBe(BAIL);

  it('constants, $literal and field paths', () => {
    check(5, 5);
    check('plain', 'plain');
    check({ $literal: '$s' }, '$s');
    check('$obj.q.r', 2);
    check('$$ROOT.obj.p', 1);
    check('$$CURRENT.s', 'text');
    check({ x: '$d', y: { z: '$s' } }, { x: 1.5, y: { z: 'text' } });
    expect(tryEvaluate('$missing', doc)).toBeUndefined();
    expect(tryEvaluate('$s.length', doc)).toBeUndefined();
    expect(tryEvaluate('$$ROOT', doc)).toBe(doc);
    bails('$arr.0'); // array traversal is mingo's
    bails('$obj.constructor');
    bails('$$NOW');
    bails({ $literal: { a: 1 } }); // the general path copies a literal document
  });

  it('$add keeps BSON numeric types: int32 overflow widens to long, decimal wins', () => {
    check({ $add: [1, 2] }, 3);
    check({ $add: ['$i', 1] }, Long.fromNumber(2147483648));
    check({ $add: ['$n', -1] }, Long.fromNumber(-2147483649));
    check({ $add: ['$lmax', -1] }, Long.MAX_VALUE.subtract(1));
    // mongod answers a double where int64 overflows; the server's general path wraps: left to it.
    bails({ $add: ['$lmax', 1] });
    check({ $add: ['$l', 1] }, Long.fromNumber(6));
    check({ $add: ['$dec', 1] }, Decimal128.fromString('2.10'));
    check({ $add: ['$d', '$l'] }, 6.5);
    check({ $add: [] }, 0);
    bails({ $add: ['$missing', 1] });
    bails({ $add: [null, 1] });
    bails({ $add: [new Date(0), 1] });
    bails({ $add: '$i' });
  });

  it('comparisons in BSON order; NaN; missing against null is left to mingo', () => {
    check({ $eq: [1, 1.0] }, true);
    check({ $eq: ['$l', 5] }, true);
    check({ $eq: ['$dec', 1.1] }, false);
    check({ $gt: ['$s', 5] }, true); // strings sort after numbers
    check({ $lt: ['$nan', -Infinity] }, true); // NaN sorts below every number
    check({ $eq: ['$nan', '$nan'] }, true);
    check({ $eq: ['$nul', null] }, true);
    check({ $gte: ['$obj', {}] }, true);
    check({ $ne: ['$z', '$nz'] }, false);
    bails({ $eq: ['$missing', null] });
    bails({ $lt: [null, '$missing'] });
    bails({ $eq: [1] });
  });

  it("truthiness is mongod's where mingo agrees, and left to mingo where it may not", () => {
    const truthy = (x: unknown) => ({ $cond: [x, 'T', 'F'] });
    check(truthy('$z'), 'F');
    check(truthy('$nz'), 'F');
    check(truthy(0.0), 'F');
    check(truthy('$nul'), 'F');
    check(truthy('$missing'), 'F');
    check(truthy(false), 'F');
    check(truthy('$e'), 'T'); // '' is true
    check(truthy('$emptyArr'), 'T');
    check(truthy('$emptyObj'), 'T');
    check(truthy('$s'), 'T');
    check(truthy('$d'), 'T');
    bails(truthy('$nan')); // mongod: true, mingo: false
    bails(truthy('$l0')); // mongod: false, mingo: true (an object)
    bails(truthy('$dec0'));
    bails(truthy('$l'));
    check({ $and: ['$d', '$s'] }, true);
    check({ $and: ['$d', '$z'] }, false);
    check({ $and: [] }, true);
    check({ $or: ['$z', '$nul', '$missing'] }, false);
    check({ $or: [] }, false);
    check({ $or: ['$z', 1, '$nan'] }, true); // stops before the NaN, as mingo does
    check({ $not: ['$z'] }, true);
    check({ $not: '$emptyArr' }, false);
    check({ $not: ['$missing'] }, true);
    bails({ $not: ['$e'] }); // mingo negates JavaScript falsiness: '' would give true
    bails({ $not: ['$nan'] });
    bails({ $not: [] });
    check({ $cond: condObject('$d', '$s', 1) }, 'text');
    bails({
      $cond: docOf([
        ['if', '$d'],
        ['then', '$s'],
      ]),
    });
    bails({ $cond: [1, 2] });
  });

  it('$isNumber, $ifNull, $mergeObjects', () => {
    check({ $isNumber: '$l' }, true);
    check({ $isNumber: ['$dec0'] }, true);
    check({ $isNumber: '$s' }, false);
    check({ $isNumber: '$missing' }, false);
    check({ $ifNull: ['$missing', '$nul', 'x'] }, 'x');
    check({ $ifNull: ['$z', 'x'] }, 0);
    expect(expectSameAsGeneral({ $ifNull: ['$missing', '$nul'] }, doc)).toBeNull();
    expect(expectSameAsGeneral({ $ifNull: ['$nul', '$missing'] }, doc)).toBeUndefined();
    bails({ $ifNull: ['$missing'] });
    check(
      { $mergeObjects: ['$obj', { p: 2, s: '$missing' }, null, '$missing'] },
      {
        p: 2,
        q: { r: 2 },
      },
    );
    check({ $mergeObjects: [] }, {});
    bails({ $mergeObjects: '$obj' });
    bails({ $mergeObjects: ['$obj', 5] });
    bails({ $mergeObjects: ['$arr'] });
  });

  it('operators it does not cover are left to mingo, the whole expression', () => {
    bails({ $size: '$arr' });
    bails({ $cond: [true, { $size: '$arr' }, 1] });
    bails({ $let: { vars: {}, in: 1 } });
  });
});

describe('inputs are only read; special names stay ordinary fields', () => {
  it('never writes into its input and builds new objects', () => {
    const doc = docOf([
      ['_id', 1],
      ['a', { b: 1 }],
      ['c', [1, 2]],
    ]);
    const before = bytesOf(doc);
    const expr = {
      m: { $mergeObjects: ['$a', { b: 2, x: '$c' }] },
      r: { $cond: [{ $gt: ['$a.b', 0] }, '$$ROOT', null] },
    };
    const exprBefore = JSON.stringify(expr);
    const result = tryEvaluate(expr, doc) as Document;
    expect(bytesOf(doc)).toBe(before);
    expect(JSON.stringify(expr)).toBe(exprBefore);
    expect(result.m).not.toBe(doc.a);
    expect(result.m).toEqual({ b: 2, x: [1, 2] });
    const staged = runStagesDirectly([{ $set: { a: 5 } }], doc) as Document;
    expect(staged).not.toBe(doc);
    expect(bytesOf(doc)).toBe(before);
  });

  it('`__proto__` and `constructor` come out as ordinary fields', () => {
    const inner = JSON.parse('{"__proto__": {"polluted": 1}, "constructor": 2, "k": 3}');
    const doc = docOf([
      ['_id', 1],
      ['o', inner],
    ]);
    // The evaluator reads through plain objects only, so it returns `o` as it is…
    const o = expectSameAsGeneral('$o', doc) as Document;
    expect(Object.hasOwn(o, '__proto__')).toBe(true);
    // …and leaves every special name it would have to read or write to the general path.
    expect(tryEvaluate({ $mergeObjects: ['$o'] }, doc)).toBe(BAIL);
    expect(tryEvaluate('$o.constructor', doc)).toBe(BAIL);
    expect(tryEvaluate(JSON.parse('{"__proto__": 1}'), doc)).toBe(BAIL);
    expect(tryEvaluate({ constructor: 1 }, doc)).toBe(BAIL);
    const merged = evaluateExpressionThroughMingo(doc, { $mergeObjects: ['$o'] }) as Document;
    expect(Object.hasOwn(merged, '__proto__')).toBe(true);
    expect(({} as Document).polluted).toBeUndefined();
    // A pipeline stage on a document with such a name is left to the general path.
    expect(runStagesDirectly([{ $set: { x: 1 } }], doc)).toBe(BAIL);
  });
});
