/**
 * Direct tests of src/testing/invariant.ts, written to kill the mutants the kit's tests left
 * alive (npm run mutation; docs/reliability.md, "Mutation testing"). No database: a check is
 * any function returning violation messages.
 *
 * The error's name, message and fields are what a failing storm test prints and what callers
 * branch on, so they are pinned exactly, as is every refusal of a bad check.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, MongoAtomicsError } from '../../src/errors.js';
import {
  assertInvariant,
  InvariantViolationError,
  violationsOf,
} from '../../src/testing/invariant.js';
import { rejectionOf } from '../support/async.js';

describe('InvariantViolationError', () => {
  it('has its name, lists every violation in the message, and keeps its fields', () => {
    const violations = ['stock -1', 'sold 21'];
    const error = new InvariantViolationError('stock never negative', violations);
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect(error.name).toBe('InvariantViolationError');
    expect(error.message).toBe(
      'invariant "stock never negative" violated (2):\n  - stock -1\n  - sold 21',
    );
    expect(error.invariant).toBe('stock never negative');
    expect(error.violations).toBe(violations);
  });
});

describe('assertInvariant', () => {
  it('resolves when the check returns no violations', async () => {
    await expect(assertInvariant('holds', () => [])).resolves.toBeUndefined();
  });

  it('throws on exactly one violation, with a frozen copy of what the check returned', async () => {
    const returned = ['one'];
    const error = await rejectionOf(assertInvariant('single', async () => returned));
    expect(error).toBeInstanceOf(InvariantViolationError);
    const violation = error as InvariantViolationError;
    expect(violation.message).toBe('invariant "single" violated (1):\n  - one');
    expect(violation.invariant).toBe('single');
    expect(violation.violations).toEqual(['one']);
    expect(violation.violations).not.toBe(returned);
    expect(Object.isFrozen(violation.violations)).toBe(true);
  });

  it('refuses a check that returns anything but an array of strings', async () => {
    for (const bad of [undefined, true, 'stock -1', ['fine', 1], [2, 'fine']]) {
      const error = await rejectionOf(assertInvariant('typed', () => bad as string[]));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).option).toBe('check');
      expect((error as Error).message).toBe(
        'assertInvariant: option "check" must return (or resolve to) an array of violation messages, [] when it holds',
      );
    }
  });

  it('refuses an empty invariant name and a check that is not a function, calling nothing', async () => {
    let ran = 0;
    const noName = await rejectionOf(
      assertInvariant('', () => {
        ran++;
        return ['x'];
      }),
    );
    expect(noName).toBeInstanceOf(InvalidArgumentError);
    expect((noName as InvalidArgumentError).option).toBe('invariant');
    expect((noName as Error).message).toBe(
      'assertInvariant: option "invariant" must be a non-empty string, got the string ""',
    );
    const noCheck = await rejectionOf(
      (assertInvariant as (...a: unknown[]) => Promise<void>)('named', null),
    );
    expect(noCheck).toBeInstanceOf(InvalidArgumentError);
    expect((noCheck as Error).message).toBe(
      'assertInvariant: option "check" must be a function, got null',
    );
    expect(ran).toBe(0);
  });
});

describe('violationsOf', () => {
  it('returns a frozen copy of the violations, and names the helper that asked on refusal', async () => {
    const returned = ['a', 'b'];
    const violations = await violationsOf('someHelper', async () => returned);
    expect(violations).toEqual(['a', 'b']);
    expect(violations).not.toBe(returned);
    expect(Object.isFrozen(violations)).toBe(true);
    const error = await rejectionOf(violationsOf('someHelper', () => 0));
    expect((error as InvalidArgumentError).primitive).toBe('someHelper');
    expect((error as Error).message).toBe(
      'someHelper: option "check" must return (or resolve to) an array of violation messages, [] when it holds',
    );
  });
});
