/**
 * Direct tests of src/testing/race.ts, written to kill the mutants the kit's tests left alive
 * (npm run mutation; docs/reliability.md, "Mutation testing"). No database: `race` only runs
 * the functions it is given, so plain values and errors stand in for primitives' results.
 *
 * The report (settled, values, errors, tally, count) is what users assert on in their own
 * suites, so every field is pinned exactly, and every refusal by its option and full message.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { race } from '../../src/testing/race.js';
import { rejectionOf, sleep } from '../support/async.js';

const call = race as (...args: unknown[]) => Promise<unknown>;

async function refusal(args: unknown[]): Promise<InvalidArgumentError> {
  const error = await rejectionOf(call(...args));
  expect(error).toBeInstanceOf(InvalidArgumentError);
  return error as InvalidArgumentError;
}

describe('race: arguments', () => {
  it('refuses a calls count that is not a positive integer, starting nothing', async () => {
    let started = 0;
    const error = await refusal([0, () => started++]);
    expect(error.name).toBe('InvalidArgumentError');
    expect(error.option).toBe('calls');
    expect(error.message).toBe('race: option "calls" must be a positive integer, got 0');
    expect(started).toBe(0);
  });

  it('accepts exactly one call (the lower boundary)', async () => {
    const report = await race(1, (i) => i);
    expect(report.values).toEqual([0]);
  });

  it('refuses a fn that is not a function', async () => {
    const error = await refusal([2, 'go']);
    expect(error.option).toBe('fn');
    expect(error.message).toBe('race: option "fn" must be a function, got the string "go"');
  });

  it('refuses options that are not an object: null and a string, naming options', async () => {
    for (const options of [null, 'fast']) {
      let started = 0;
      const error = await refusal([2, () => started++, options]);
      expect(error.option).toBe('options');
      expect(error.message).toBe('race: option "options" must be an object');
      expect(started).toBe(0);
    }
  });

  it('refuses an outcome option that is not a function, naming options.outcome', async () => {
    let started = 0;
    const error = await refusal([2, () => started++, { outcome: 'ok' }]);
    expect(error.option).toBe('options.outcome');
    expect(error.message).toBe(
      'race: option "options.outcome" must be a function, got the string "ok"',
    );
    expect(started).toBe(0);
  });

  it('refuses an outcome that returns a non-string, after the calls ran', async () => {
    const error = await refusal([2, (i: number) => i, { outcome: (v: number) => v }]);
    expect(error.option).toBe('options.outcome');
    expect(error.message).toBe(
      'race: option "options.outcome" must return a string, returned a number',
    );
  });
});

describe('race: the report', () => {
  it('lists settled results, values and errors in index order, and tallies them', async () => {
    const boom = new TypeError('boom');
    const report = await race(5, async (i) => {
      // Settle in reverse index order: the report must still be in index order.
      await sleep((5 - i) * 5);
      if (i === 1) throw boom;
      if (i === 3) throw 'a string';
      return { outcome: i % 2 === 0 ? 'even' : 'odd', i };
    });
    expect(report.settled).toEqual([
      { status: 'fulfilled', value: { outcome: 'even', i: 0 } },
      { status: 'rejected', reason: boom },
      { status: 'fulfilled', value: { outcome: 'even', i: 2 } },
      { status: 'rejected', reason: 'a string' },
      { status: 'fulfilled', value: { outcome: 'even', i: 4 } },
    ]);
    expect(report.values).toEqual([
      { outcome: 'even', i: 0 },
      { outcome: 'even', i: 2 },
      { outcome: 'even', i: 4 },
    ]);
    expect(report.errors).toEqual([boom, 'a string']);
    expect(report.errors[0]).toBe(boom);
    expect({ ...report.tally }).toEqual({
      even: 3,
      'error:TypeError': 1,
      'error:non-Error string': 1,
    });
    expect(Object.keys(report).sort()).toEqual(['count', 'errors', 'settled', 'tally', 'values']);
  });

  it('gives a frozen, null-prototype tally and a count that is 0 for a missing outcome', async () => {
    const report = await race(3, (i) => (i === 0 ? 'a' : 'b'));
    expect(Object.getPrototypeOf(report.tally)).toBe(null);
    expect(Object.isFrozen(report.tally)).toBe(true);
    expect(report.count('a')).toBe(1);
    expect(report.count('b')).toBe(2);
    expect(report.count('c')).toBe(0);
    expect(report.count('toString')).toBe(0);
  });

  it('outcomes named __proto__ or constructor (the caller names them) are counted as own keys, Object.prototype untouched', async () => {
    const names = ['__proto__', 'constructor', '__proto__'];
    const report = await race(3, (i) => i, { outcome: (_value, index) => names[index] ?? '' });
    expect(Object.keys(report.tally).sort()).toEqual(['__proto__', 'constructor']);
    expect(report.count('__proto__')).toBe(2);
    expect(report.count('constructor')).toBe(1);
    expect(Object.getPrototypeOf(report.tally)).toBe(null);
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it('uses the outcome option, given each value and its index', async () => {
    const seen: [number, number][] = [];
    const report = await race(3, (i) => i * 10, {
      outcome: (value, index) => {
        seen.push([value, index]);
        return `v${value}@${index}`;
      },
    });
    expect(seen).toEqual([
      [0, 0],
      [10, 1],
      [20, 2],
    ]);
    expect({ ...report.tally }).toEqual({ 'v0@0': 1, 'v10@1': 1, 'v20@2': 1 });
  });

  it('names outcomes by default: String() of primitives, own string outcome, else fulfilled', async () => {
    const inherited = Object.create({ outcome: 'inherited' }) as object;
    const fnWithOutcome = Object.assign(() => 0, { outcome: 'from-function' });
    const values: unknown[] = [
      null,
      undefined,
      7,
      true,
      3n,
      'text',
      Symbol('s'),
      { outcome: 'own' },
      { outcome: 42 },
      {},
      inherited,
      fnWithOutcome,
      () => 0,
    ];
    const report = await race(values.length, (i) => values[i]);
    expect({ ...report.tally }).toEqual({
      null: 1,
      undefined: 1,
      '7': 1,
      true: 1,
      '3': 1,
      text: 1,
      fulfilled: 5,
      own: 1,
      'from-function': 1,
    });
  });
});

describe('race: context.sync', () => {
  it('holds every call at sync until all have reached it', async () => {
    const log: string[] = [];
    await race(3, async (i, { sync }) => {
      await sleep(i * 15);
      log.push(`arrive ${i}`);
      await sync();
      log.push(`pass ${i}`);
    });
    expect(log.slice(0, 3)).toEqual(['arrive 0', 'arrive 1', 'arrive 2']);
    expect(log.slice(3).sort()).toEqual(['pass 0', 'pass 1', 'pass 2']);
  });

  it('counts a call once however often it calls sync', async () => {
    const log: string[] = [];
    await race(2, async (i, { sync }) => {
      if (i === 0) {
        const first = sync();
        const second = sync();
        expect(second).toBe(first);
        await second;
        log.push('pass 0');
      } else {
        await sleep(30);
        log.push('arrive 1');
        await sync();
      }
    });
    expect(log).toEqual(['arrive 1', 'pass 0']);
  });

  it('a call that settles without reaching sync is withdrawn, so the others are not held', async () => {
    const report = await race(3, async (i, { sync }) => {
      if (i === 0) throw new RangeError('failed before sync');
      await sync();
      return 'through';
    });
    expect({ ...report.tally }).toEqual({ through: 2, 'error:RangeError': 1 });
  }, 5_000);

  it('a call that reached sync and then settled is not withdrawn a second time', async () => {
    const log: string[] = [];
    await race(3, async (i, { sync }) => {
      if (i === 0) {
        void sync(); // arrives, does not wait, settles
        return;
      }
      if (i === 2) {
        await sleep(30);
        log.push('arrive 2');
      }
      await sync();
      if (i === 1) log.push('pass 1');
    });
    // Withdrawing call 0 after it arrived would count it twice and release call 1 early.
    expect(log).toEqual(['arrive 2', 'pass 1']);
  });

  it('starts no call inside the race() call itself: all start together, after set-up', async () => {
    let returned = false;
    const seen: boolean[] = [];
    const report = race(3, () => {
      seen.push(returned);
    });
    returned = true;
    await report;
    expect(seen).toEqual([true, true, true]);
  });

  it('starts no call before every call is set up', async () => {
    const order: string[] = [];
    await race(3, (i) => {
      order.push(`run ${i}`);
    });
    expect(order).toEqual(['run 0', 'run 1', 'run 2']);
  });
});
