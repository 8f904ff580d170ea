/**
 * Direct tests of src/testing/naive-versus-safe.ts, written to kill the mutants the testing
 * kit's own tests left alive (npm run mutation; docs/reliability.md, "Mutation testing"). No
 * database: the storms run on plain in-memory state, and the report of a NaiveVersusSafeError
 * is pinned on results built by hand and passed to assertNaiveBreaksSafeHolds.
 *
 * The report text is what a developer reads when a race test fails: which storm held or broke,
 * its outcomes, its violations and its first error. A report that drops a line, joins the lines
 * into one, or labels the storms wrongly misleads, so it is pinned in full.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, MongoAtomicsError } from '../../src/errors.js';
import {
  assertNaiveBreaksSafeHolds,
  NaiveVersusSafeError,
  type NaiveVersusSafeResult,
  naiveVersusSafe,
  type StormVerdict,
} from '../../src/testing/naive-versus-safe.js';
import type { RaceReport } from '../../src/testing/race.js';

function report(tally: Record<string, number>, errors: unknown[] = []): RaceReport<unknown> {
  return {
    settled: [],
    values: [],
    errors,
    tally,
    count: (outcome: string) => tally[outcome] ?? 0,
  };
}

function verdict(
  held: boolean,
  violations: string[],
  tally: Record<string, number>,
  errors: unknown[] = [],
): StormVerdict<unknown> {
  return { held, violations, report: report(tally, errors) };
}

function thrown(result: NaiveVersusSafeResult<unknown, unknown>): NaiveVersusSafeError {
  try {
    assertNaiveBreaksSafeHolds(result);
  } catch (error) {
    return error as NaiveVersusSafeError;
  }
  throw new Error('assertNaiveBreaksSafeHolds did not throw');
}

async function refusal(spec: unknown): Promise<InvalidArgumentError> {
  try {
    await naiveVersusSafe(spec as Parameters<typeof naiveVersusSafe>[0]);
  } catch (error) {
    return error as InvalidArgumentError;
  }
  throw new Error('naiveVersusSafe did not throw');
}

const good = {
  invariant: 'n counts every call',
  calls: 2,
  setup: () => ({ n: 0 }),
  naive: () => 'ok',
  safe: () => 'ok',
  check: () => [],
};

describe('assertNaiveBreaksSafeHolds: the report of a NaiveVersusSafeError', () => {
  it('naive broke and safe held: no throw', () => {
    expect(() =>
      assertNaiveBreaksSafeHolds({
        invariant: 'x',
        naive: verdict(false, ['lost'], { ok: 1 }),
        safe: verdict(true, [], { ok: 1 }),
      }),
    ).not.toThrow();
  });

  it('naive held (no errors in either storm): both storms described, no "first error" line', () => {
    const result = {
      invariant: 'stock never below 0',
      naive: verdict(true, [], { sold: 2 }),
      safe: verdict(true, [], { sold: 1, soldOut: 1 }),
    };
    const error = thrown(result);
    expect(error).toBeInstanceOf(NaiveVersusSafeError);
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect(error.name).toBe('NaiveVersusSafeError');
    expect(error.result).toBe(result);
    expect(error.message).toBe(
      'naiveVersusSafe "stock never below 0": the naive code held, so this storm does not expose ' +
        'the race (and proves nothing about the safe code): make the storm harsher (more calls, one connection per call with raceClients, or a wider gap between the naive read and write)\n' +
        'naive: held; outcomes {"sold":2}\n' +
        'safe: held; outcomes {"sold":1,"soldOut":1}',
    );
  });

  it('naive held AND safe broke: both problems joined by "; ", violations and first errors listed', () => {
    const result = {
      invariant: 'inv',
      naive: verdict(true, [], { ok: 1, 'error:TypeError': 1 }, [new TypeError('naive boom'), 'x']),
      safe: verdict(false, ['v1', 'v2'], { 'error:non-Error string': 1 }, ['just text']),
    };
    expect(thrown(result).message).toBe(
      'naiveVersusSafe "inv": the naive code held, so this storm does not expose the race ' +
        '(and proves nothing about the safe code): make the storm harsher (more calls, one connection per call with raceClients, or a wider gap between the naive read and write); the safe code broke the invariant\n' +
        'naive: held; outcomes {"ok":1,"error:TypeError":1}\n' +
        '    first error: TypeError: naive boom\n' +
        'safe: broke; outcomes {"error:non-Error string":1}\n' +
        '    - v1\n' +
        '    - v2\n' +
        '    first error: non-Error string',
    );
  });

  it('safe broke only', () => {
    const result = {
      invariant: 'inv',
      naive: verdict(false, ['n lost'], { ok: 2 }),
      safe: verdict(false, ['s lost'], { ok: 2 }),
    };
    expect(thrown(result).message).toBe(
      'naiveVersusSafe "inv": the safe code broke the invariant\n' +
        'naive: broke; outcomes {"ok":2}\n' +
        '    - n lost\n' +
        'safe: broke; outcomes {"ok":2}\n' +
        '    - s lost',
    );
  });
});

describe('naiveVersusSafe: argument checks name the option, before any storm runs', () => {
  it.each([
    ['null', null],
    ['a number', 42],
    ['a string', 'spec'],
    ['undefined', undefined],
  ])('spec %s → InvalidArgumentError on "spec"', async (_label, spec) => {
    const error = await refusal(spec);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.option).toBe('spec');
    expect(error.message).toBe('naiveVersusSafe: option "spec" must be an object');
  });

  it('the helper is named in every refusal', async () => {
    const error = await refusal({ ...good, invariant: '' });
    expect(error.message).toBe(
      'naiveVersusSafe: option "invariant" must be a non-empty string, got the string ""',
    );
    expect(error.primitive).toBe('naiveVersusSafe');
  });

  it('allowSafeErrors that is not a boolean', async () => {
    let setups = 0;
    const error = await refusal({ ...good, setup: () => setups++, allowSafeErrors: 'yes' });
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.option).toBe('allowSafeErrors');
    expect(error.message).toBe('naiveVersusSafe: option "allowSafeErrors" must be a boolean');
    expect(setups).toBe(0);
  });

  it('a check that returns no array is refused under the helper name', async () => {
    const error = await refusal({ ...good, check: () => 'fine' });
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toBe(
      'naiveVersusSafe: option "check" must return (or resolve to) an array of violation messages, [] when it holds',
    );
  });
});

describe('naiveVersusSafe: rejected calls are violations of the safe storm only', () => {
  it('naive calls that throw are not violations: a naive storm whose check passes still "held"', async () => {
    const error = await naiveVersusSafe({
      ...good,
      naive: () => {
        throw new TypeError('naive fails loudly');
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NaiveVersusSafeError);
    const result = (error as NaiveVersusSafeError).result;
    expect(result.naive.held).toBe(true);
    expect(result.naive.violations).toEqual([]);
    expect(result.safe.held).toBe(true);
  });

  it('safe calls that throw are violations unless allowSafeErrors', async () => {
    const spec = {
      ...good,
      check: (_s: unknown, _r: unknown, run: string) => (run === 'naive' ? ['lost'] : []),
      safe: (index: number) => {
        if (index === 1) throw new RangeError('safe fails');
        return 'ok';
      },
    };
    const error = await naiveVersusSafe(spec).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NaiveVersusSafeError);
    expect((error as NaiveVersusSafeError).result.safe.violations).toEqual([
      'call 1 threw RangeError: safe fails',
    ]);
    const result = await naiveVersusSafe({ ...spec, allowSafeErrors: true });
    expect(result.safe.held).toBe(true);
    expect(result.naive.held).toBe(false);
  });
});
