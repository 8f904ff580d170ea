/**
 * Direct tests of src/testing/validate.ts, the argument checks and error descriptions shared by
 * the testing kit, written to kill the mutants the kit's own tests left alive (npm run mutation;
 * docs/reliability.md, "Mutation testing"). Pure functions: no database.
 *
 * Every refusal is pinned by its class, `option` and full message, at the boundaries of each
 * check (0 and 1 for a positive integer, -1 and 0 for a non-negative one, unsafe integers,
 * fractions, NaN, numbers as strings), and every error description by its exact text: the kit
 * quotes them in the failure reports of race tests.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  callable,
  errorLine,
  errorName,
  fail,
  nonEmptyString,
  nonNegativeInteger,
  positiveInteger,
} from '../../src/testing/validate.js';

function refusal(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return error as InvalidArgumentError;
  }
  throw new Error('no refusal');
}

describe('fail', () => {
  it('throws an InvalidArgumentError naming the helper and the option', () => {
    const error = refusal(() => fail('race', 'calls', 'is wrong'));
    expect(error.name).toBe('InvalidArgumentError');
    expect(error.primitive).toBe('race');
    expect(error.option).toBe('calls');
    expect(error.message).toBe('race: option "calls" is wrong');
  });
});

describe('positiveInteger', () => {
  it.each([1, 2, Number.MAX_SAFE_INTEGER])('accepts %s and returns it', (value) => {
    expect(positiveInteger('h', 'o', value)).toBe(value);
  });

  it.each([
    [0, '0'],
    [-1, '-1'],
    [1.5, '1.5'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [Number.MAX_SAFE_INTEGER + 1, '9007199254740992'],
    ['1', 'the string "1"'],
    [undefined, 'a undefined'],
    [null, 'null'],
  ])('refuses %s', (value, described) => {
    const error = refusal(() => positiveInteger('h', 'o', value));
    expect(error.option).toBe('o');
    expect(error.message).toBe(`h: option "o" must be a positive integer, got ${described}`);
  });
});

describe('nonNegativeInteger', () => {
  it.each([0, 1, Number.MAX_SAFE_INTEGER])('accepts %s and returns it', (value) => {
    expect(nonNegativeInteger('h', 'o', value)).toBe(value);
  });

  it.each([
    [-1, '-1'],
    [0.5, '0.5'],
    [Number.NaN, 'NaN'],
    [Number.MAX_SAFE_INTEGER + 1, '9007199254740992'],
    ['0', 'the string "0"'],
    [null, 'null'],
  ])('refuses %s', (value, described) => {
    const error = refusal(() => nonNegativeInteger('h', 'o', value));
    expect(error.option).toBe('o');
    expect(error.message).toBe(`h: option "o" must be a non-negative integer, got ${described}`);
  });
});

describe('callable', () => {
  it('accepts functions, sync and async', () => {
    expect(() => callable('h', 'fn', () => 1)).not.toThrow();
    expect(() => callable('h', 'fn', async () => 1)).not.toThrow();
  });

  it.each([
    [{}, 'an object'],
    ['f', 'the string "f"'],
    [undefined, 'a undefined'],
  ])('refuses %s', (value, described) => {
    const error = refusal(() => callable('h', 'fn', value));
    expect(error.option).toBe('fn');
    expect(error.message).toBe(`h: option "fn" must be a function, got ${described}`);
  });
});

describe('nonEmptyString', () => {
  it('accepts and returns a non-empty string, even a blank one', () => {
    expect(nonEmptyString('h', 'o', 'x')).toBe('x');
    expect(nonEmptyString('h', 'o', ' ')).toBe(' ');
  });

  it.each([
    ['', 'the string ""'],
    [1, '1'],
    [null, 'null'],
    [['a'], 'an array'],
  ])('refuses %s', (value, described) => {
    const error = refusal(() => nonEmptyString('h', 'o', value));
    expect(error.option).toBe('o');
    expect(error.message).toBe(`h: option "o" must be a non-empty string, got ${described}`);
  });
});

describe('errorName and errorLine', () => {
  class CustomError extends Error {
    override name = 'CustomError';
  }

  it.each([
    [new TypeError('t'), 'TypeError', 'TypeError: t'],
    [new CustomError('c'), 'CustomError', 'CustomError: c'],
    [new Error(''), 'Error', 'Error: '],
    [null, 'non-Error null', 'non-Error null'],
    [undefined, 'non-Error undefined', 'non-Error undefined'],
    ['text', 'non-Error string', 'non-Error string'],
    [42, 'non-Error number', 'non-Error number'],
    [{ name: 'Fake', message: 'm' }, 'non-Error object', 'non-Error object'],
  ])('%s', (error, name, line) => {
    expect(errorName(error)).toBe(name);
    expect(errorLine(error)).toBe(line);
  });
});
