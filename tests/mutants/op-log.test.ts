/**
 * Direct tests of src/op-log.ts (exactly-once operation ids), written to kill the mutants the
 * primitives' tests left alive (npm run mutation; docs/reliability.md, "Mutation testing").
 * The filters, updates and expressions it builds are checked here by shape; tests/op-id.test.ts
 * shows the server applying them.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  assertNoOverlap,
  guarded,
  OP_ID_OPTIONS,
  type OpGuard,
  opFilter,
  opGuard,
  opQuestion,
  opRecordExpression,
  opSeenExpression,
} from '../../src/op-log.js';
import { validator } from '../../src/validate.js';

const v = () => validator('testPrimitive');

function rejection(run: () => unknown): { option: string; message: string } {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const e = error as InvalidArgumentError;
    return { option: e.option, message: e.message };
  }
  throw new Error('expected an InvalidArgumentError');
}

const guard: OpGuard = { opId: 'req-1', field: '_ops', size: 7 };

describe('opGuard', () => {
  it('lists its options', () => {
    expect(OP_ID_OPTIONS).toEqual(['opId', 'opIdLog']);
  });

  it('is undefined without an opId', () => {
    expect(opGuard(v(), {})).toBeUndefined();
  });

  it("defaults the log to '_opIds', 50 ids", () => {
    expect(opGuard(v(), { opId: 'a' })).toStrictEqual({ opId: 'a', field: '_opIds', size: 50 });
    expect(opGuard(v(), { opId: 'a', opIdLog: {} })).toStrictEqual({
      opId: 'a',
      field: '_opIds',
      size: 50,
    });
    expect(opGuard(v(), { opId: 'a', opIdLog: { size: 3 } })).toStrictEqual({
      opId: 'a',
      field: '_opIds',
      size: 3,
    });
    expect(opGuard(v(), { opId: 'a', opIdLog: { field: 'log.ids' } })).toStrictEqual({
      opId: 'a',
      field: 'log.ids',
      size: 50,
    });
  });

  it('accepts ids of 1 to 200 characters and refuses empty, longer or non-string ids', () => {
    expect(opGuard(v(), { opId: 'x'.repeat(200) })?.opId).toHaveLength(200);
    expect(opGuard(v(), { opId: 'x' })?.opId).toBe('x');
    for (const opId of ['', 'x'.repeat(201), 5, null, { $ne: 1 }]) {
      const { option, message } = rejection(() => opGuard(v(), { opId } as never));
      expect(option).toBe('opId');
      expect(message).toBe(
        'testPrimitive: option "opId" must be a non-empty string of at most 200 characters',
      );
    }
  });

  it('refuses opIdLog without opId', () => {
    const { option, message } = rejection(() => opGuard(v(), { opIdLog: { size: 3 } }));
    expect(option).toBe('opIdLog');
    expect(message).toBe('testPrimitive: option "opIdLog" is only meaningful with "opId"');
  });

  it('checks opIdLog before anything else: its keys, its field path and its size', () => {
    expect(rejection(() => opGuard(v(), { opIdLog: { sizes: 3 } } as never)).option).toBe(
      'opIdLog.sizes',
    );
    expect(rejection(() => opGuard(v(), { opIdLog: 'x' } as never)).option).toBe('opIdLog');
    expect(rejection(() => opGuard(v(), { opId: 'a', opIdLog: { field: '$x' } })).option).toBe(
      'opIdLog.field',
    );
    expect(rejection(() => opGuard(v(), { opId: 'a', opIdLog: { size: 0 } })).option).toBe(
      'opIdLog.size',
    );
    expect(rejection(() => opGuard(v(), { opId: 'a', opIdLog: { size: 1.5 } })).option).toBe(
      'opIdLog.size',
    );
    expect(opGuard(v(), { opId: 'a', opIdLog: { size: 1 } })?.size).toBe(1);
  });
});

describe('assertNoOverlap', () => {
  it('does nothing without a guard', () => {
    expect(() => assertNoOverlap(v(), undefined, '_opIds', 'field')).not.toThrow();
  });

  it('refuses the log field itself, a path inside it, and a path containing it', () => {
    for (const path of ['_ops', '_ops.0']) {
      const { option, message } = rejection(() => assertNoOverlap(v(), guard, path, 'field'));
      expect(option).toBe('field');
      expect(message).toBe(
        'testPrimitive: option "field" overlaps the op id log field "_ops" (choose another opIdLog.field)',
      );
    }
    const nested: OpGuard = { ...guard, field: 'meta.ops' };
    expect(rejection(() => assertNoOverlap(v(), nested, 'meta', 'field')).option).toBe('field');
    expect(rejection(() => assertNoOverlap(v(), nested, 'meta.ops.x', 'field')).option).toBe(
      'field',
    );
  });

  it('allows paths that only share a prefix of characters', () => {
    for (const path of ['_opsx', '_op', 'x._ops', 'other']) {
      expect(() => assertNoOverlap(v(), guard, path, 'field')).not.toThrow();
    }
    const nested: OpGuard = { ...guard, field: 'meta.ops' };
    expect(() => assertNoOverlap(v(), nested, 'met', 'field')).not.toThrow();
    expect(() => assertNoOverlap(v(), nested, 'meta.opsx', 'field')).not.toThrow();
  });
});

describe('filters, updates and expressions', () => {
  it('opFilter: the log must not hold the id', () => {
    expect(opFilter(guard)).toStrictEqual({ _ops: { $ne: 'req-1' } });
  });

  it('guarded without a guard returns the inputs unchanged', () => {
    const filter = { a: 1 };
    const update = { $inc: { n: 1 } };
    const result = guarded(undefined, filter, update);
    expect(result.filter).toBe(filter);
    expect(result.update).toBe(update);
  });

  it('guarded ANDs the not-seen clause and pushes the id keeping the newest size', () => {
    expect(guarded(guard, { a: 1 }, { $inc: { n: 1 } })).toStrictEqual({
      filter: { $and: [{ a: 1 }, { _ops: { $ne: 'req-1' } }] },
      update: { $inc: { n: 1 }, $push: { _ops: { $each: ['req-1'], $slice: -7 } } },
    });
  });

  it("guarded keeps the update's own $push entries", () => {
    const update = { $push: { items: { $each: [1] } } };
    expect(guarded(guard, {}, update).update).toStrictEqual({
      $push: { items: { $each: [1] }, _ops: { $each: ['req-1'], $slice: -7 } },
    });
  });

  it('opSeenExpression: the id, as a literal, in the log or an empty one', () => {
    expect(opSeenExpression(guard)).toStrictEqual({
      $in: [{ $literal: 'req-1' }, { $ifNull: ['$_ops', []] }],
    });
  });

  it('opRecordExpression: appends the literal id and keeps the newest size', () => {
    expect(opRecordExpression(guard)).toStrictEqual({
      $slice: [{ $concatArrays: [{ $ifNull: ['$_ops', []] }, [{ $literal: 'req-1' }]] }, -7],
    });
  });

  it('opQuestion: nothing without a guard, else "the log holds the id"', () => {
    expect(opQuestion(undefined)).toBeUndefined();
    expect(opQuestion(guard)).toStrictEqual({
      $or: [
        { $eq: ['$_ops', { $literal: 'req-1' }] },
        {
          $cond: [{ $isArray: '$_ops' }, { $in: [{ $literal: 'req-1' }, '$_ops'] }, false],
        },
      ],
    });
  });
});
