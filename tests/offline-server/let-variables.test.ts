/**
 * Command `let` variables where the offline server cannot do what mongod does, and refuses
 * instead (tests/conformance/let-variables.test.ts pins what it does like mongod).
 *
 * mongod lets a client define `CURRENT` (variable_validation.cpp: "System variables users allowed
 * to write to") and `this` (an ordinary user name); mingo resolves `$$CURRENT` itself and binds
 * `$$this` to the current document ahead of global variables, so either would be read wrongly.
 * mongod defines `$$CLUSTER_TIME` on a replica set; mingo does not know it.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../offline-server/src/errors.js';
import {
  compileFilter,
  evaluateExpression,
  resolveConstants,
  resolveLet,
  withCommandVariables,
} from '../../offline-server/src/query.js';
import { serverError } from './helpers.js';

describe('let variables the offline server refuses', () => {
  it.each([['CURRENT'], ['this']])('a let variable named %s is refused, naming it', (name) => {
    const error = serverError(() => resolveLet({ find: 'c', filter: {}, let: { [name]: 1 } }));
    expect(error.code).toBe(ErrorCode.BadValue);
    expect(error.message).toBe(
      `The offline test server does not implement a 'let' variable named '${name}'`,
    );
  });

  it('$$CLUSTER_TIME is refused, naming it, not called undefined', () => {
    for (const run of [
      () => resolveLet({ find: 'c', let: { t: '$$CLUSTER_TIME' } }),
      () => evaluateExpression({}, '$$CLUSTER_TIME'),
    ]) {
      const error = serverError(run);
      expect(error.code).toBe(ErrorCode.BadValue);
      expect(error.message).toContain('$$CLUSTER_TIME');
    }
  });
});

describe('update statement constants the offline server refuses', () => {
  it.each([['ROOT'], ['CURRENT'], ['NOW'], ['this']])('a constant named %s is refused', (name) => {
    const error = serverError(() => resolveConstants({ [name]: 1 }));
    expect(error.code).toBe(ErrorCode.BadValue);
    expect(error.message).toBe(
      `The offline test server does not implement an update constant named '${name}'`,
    );
  });

  it('other names follow validateNameForUserRead: an uppercase first letter is allowed', () => {
    expect(resolveConstants({ Up: 1, été: 2 })).toEqual({ Up: 1, été: 2 });
    expect(serverError(() => resolveConstants({ _x: 1 })).code).toBe(ErrorCode.FailedToParse);
    expect(serverError(() => resolveConstants({ 'a.b': 1 })).message).toBe(
      "'a.b' contains an invalid character for a variable name: '.'",
    );
  });
});

describe('withCommandVariables', () => {
  it('scopes the variables to the call, also for a filter compiled (and cached) before', () => {
    const filter = { $expr: { $eq: ['$a', '$$v'] } };
    const test = compileFilter(filter);
    const variables = resolveLet({ find: 'c', let: { v: 1 } });
    expect(withCommandVariables(variables, () => test({ a: 1 }))).toBe(true);
    expect(withCommandVariables({ v: 2 }, () => test({ a: 1 }))).toBe(false);
    expect(serverError(() => test({ a: 1 })).code).toBe(17276);
  });

  it('restores the outer variables when the call throws', () => {
    expect(() =>
      withCommandVariables({ v: 1 }, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(serverError(() => evaluateExpression({}, '$$v')).code).toBe(17276);
  });
});
