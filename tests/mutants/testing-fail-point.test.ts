/**
 * Direct tests of src/testing/fail-point.ts, written to kill the mutants the testing kit's own
 * tests left alive (npm run mutation; docs/reliability.md, "Mutation testing"). No database: a
 * fake client records the commands it is sent and answers or fails as each test says, so each
 * test can pin the exact `configureFailPoint` command sent, prove that a refused spec sends
 * nothing, and give the replies (code 59 CommandNotFound, a thrown non-Error) that the offline
 * server cannot be made to send on demand.
 *
 * Every refusal is pinned by its option and full message; every FailPointError by its `name`,
 * full message and `cause`.
 */
import type { Document, MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, MongoAtomicsError } from '../../src/errors.js';
import {
  clearFailPoint,
  FailPointError,
  type FailPointSpec,
  setFailPoint,
  uniqueAppName,
  withFailPoint,
} from '../../src/testing/fail-point.js';

interface Fake {
  client: MongoClient;
  sent: Document[];
  dbs: string[];
}

/** A client whose `db(name).command(cmd)` records the call, then runs `reply` (throw to fail). */
function fakeClient(reply: (command: Document, n: number) => unknown = () => ({ ok: 1 })): Fake {
  const sent: Document[] = [];
  const dbs: string[] = [];
  const client = {
    db(name: string) {
      dbs.push(name);
      return {
        async command(command: Document) {
          sent.push(command);
          return reply(command, sent.length);
        },
      };
    },
  } as unknown as MongoClient;
  return { client, sent, dbs };
}

const CLEAR = { configureFailPoint: 'failCommand', mode: 'off' };
const data = { failCommands: ['find'] };

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('did not reject');
}

describe('the spec checks: InvalidArgumentError naming the option, nothing sent', () => {
  const cases: [string, unknown, string, string][] = [
    ['null spec', null, 'spec', 'must be an object'],
    ['a string spec', 'alwaysOn', 'spec', 'must be an object'],
    [
      'mode off',
      { mode: 'off', data },
      'spec.mode',
      "must be 'alwaysOn', { times: n } or { skip: n } (turn it off with clearFailPoint)",
    ],
    [
      'mode null',
      { mode: null, data },
      'spec.mode',
      "must be 'alwaysOn', { times: n } or { skip: n } (turn it off with clearFailPoint)",
    ],
    [
      'mode with neither times nor skip',
      { mode: { count: 1 }, data },
      'spec.mode',
      "must be 'alwaysOn', { times: n } or { skip: n } (turn it off with clearFailPoint)",
    ],
    [
      'mode undefined',
      { mode: undefined, data },
      'spec.mode',
      "must be 'alwaysOn', { times: n } or { skip: n } (turn it off with clearFailPoint)",
    ],
    [
      'a function with an own times',
      { mode: Object.assign(() => 'alwaysOn', { times: 1 }), data },
      'spec.mode',
      "must be 'alwaysOn', { times: n } or { skip: n } (turn it off with clearFailPoint)",
    ],
    [
      'a function with an own skip',
      { mode: Object.assign(() => 'alwaysOn', { skip: 0 }), data },
      'spec.mode',
      "must be 'alwaysOn', { times: n } or { skip: n } (turn it off with clearFailPoint)",
    ],
    [
      'an inherited times',
      { mode: Object.create({ times: 1 }), data },
      'spec.mode',
      "must be 'alwaysOn', { times: n } or { skip: n } (turn it off with clearFailPoint)",
    ],
    [
      'times 0',
      { mode: { times: 0 }, data },
      'spec.mode.times',
      'must be a positive integer, got 0',
    ],
    [
      'skip -1',
      { mode: { skip: -1 }, data },
      'spec.mode.skip',
      'must be a non-negative integer, got -1',
    ],
    ['data null', { mode: 'alwaysOn', data: null }, 'spec.data', 'must be an object'],
    ['data a string', { mode: 'alwaysOn', data: 'find' }, 'spec.data', 'must be an object'],
    [
      'failCommands empty',
      { mode: 'alwaysOn', data: { failCommands: [] } },
      'spec.data.failCommands',
      'must be a non-empty array of command names',
    ],
    [
      'failCommands a string',
      { mode: 'alwaysOn', data: { failCommands: 'find' } },
      'spec.data.failCommands',
      'must be a non-empty array of command names',
    ],
    [
      'an empty command name',
      { mode: 'alwaysOn', data: { failCommands: ['find', ''] } },
      'spec.data.failCommands.1',
      'must be a non-empty string, got the string ""',
    ],
    [
      'an empty appName',
      { mode: 'alwaysOn', data: { failCommands: ['find'], appName: '' } },
      'spec.data.appName',
      'must be a non-empty string, got the string ""',
    ],
  ];

  it.each(cases)('setFailPoint: %s', async (_label, spec, option, problem) => {
    const fake = fakeClient();
    const error = await rejection(setFailPoint(fake.client, spec as FailPointSpec));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe(option);
    expect(error.message).toBe(`setFailPoint: option "${option}" ${problem}`);
    expect(fake.sent).toEqual([]);
  });

  it.each(cases)(
    'withFailPoint: %s, the callback never runs',
    async (_l, spec, option, problem) => {
      const fake = fakeClient();
      let ran = false;
      const error = await rejection(
        withFailPoint(fake.client, spec as FailPointSpec, () => {
          ran = true;
        }),
      );
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error.message).toBe(`withFailPoint: option "${option}" ${problem}`);
      expect(fake.sent).toEqual([]);
      expect(ran).toBe(false);
    },
  );

  it('withFailPoint: fn that is not a function, nothing sent', async () => {
    const fake = fakeClient();
    const error = await rejection(
      withFailPoint(fake.client, { mode: 'alwaysOn', data }, 'fn' as unknown as () => void),
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toBe(
      'withFailPoint: option "fn" must be a function, got the string "fn"',
    );
    expect(fake.sent).toEqual([]);
  });
});

describe('the command sent', () => {
  it.each([
    ['alwaysOn', 'alwaysOn', 'alwaysOn'],
    ['times 1', { times: 1 }, { times: 1 }],
    ['skip 0', { skip: 0 }, { skip: 0 }],
    ['skip 3', { skip: 3 }, { skip: 3 }],
  ])('mode %s', async (_label, mode, sentMode) => {
    const fake = fakeClient();
    await setFailPoint(fake.client, { mode: mode as FailPointSpec['mode'], data });
    expect(fake.dbs).toEqual(['admin']);
    expect(fake.sent).toEqual([
      { configureFailPoint: 'failCommand', mode: sentMode, data: { failCommands: ['find'] } },
    ]);
  });

  it('times wins over skip when both are given; extra mode fields are not sent', async () => {
    const fake = fakeClient();
    await setFailPoint(fake.client, {
      mode: { times: 2, skip: 1 } as unknown as FailPointSpec['mode'],
      data,
    });
    expect(fake.sent[0]?.mode).toEqual({ times: 2 });
  });

  it('data: own fields only, passed through; appName kept', async () => {
    const fake = fakeClient();
    const inherited = Object.assign(Object.create({ closeConnection: true }), {
      failCommands: ['insert', 'update'],
      appName: 'app',
      errorCode: 91,
    });
    await setFailPoint(fake.client, { mode: 'alwaysOn', data: inherited });
    expect(fake.sent[0]?.data).toEqual({
      failCommands: ['insert', 'update'],
      appName: 'app',
      errorCode: 91,
    });
    expect(Object.hasOwn(fake.sent[0]?.data, 'closeConnection')).toBe(false);
  });

  it('clearFailPoint sends mode off on admin', async () => {
    const fake = fakeClient();
    await clearFailPoint(fake.client);
    expect(fake.dbs).toEqual(['admin']);
    expect(fake.sent).toEqual([CLEAR]);
  });
});

describe('FailPointError', () => {
  it('a server without test commands (code 59): the hint says how to enable them', async () => {
    const cause = Object.assign(new Error('no such command'), { code: 59 });
    const fake = fakeClient(() => {
      throw cause;
    });
    const error = await rejection(setFailPoint(fake.client, { mode: 'alwaysOn', data }));
    expect(error).toBeInstanceOf(FailPointError);
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect(error.name).toBe('FailPointError');
    expect(error.cause).toBe(cause);
    expect(error.message).toBe(
      'setFailPoint: configureFailPoint failed: the server has no configureFailPoint command. ' +
        'Fail points are test commands: start mongod with `--setParameter enableTestCommands=1` ' +
        "(mongodb-memory-server: `instance: { args: ['--setParameter', 'enableTestCommands=1'] }`)",
    );
  });

  it('another error: its name and message', async () => {
    const cause = Object.assign(new TypeError('not authorized'), { code: 13 });
    const fake = fakeClient(() => {
      throw cause;
    });
    const error = await rejection(clearFailPoint(fake.client));
    expect(error).toBeInstanceOf(FailPointError);
    expect(error.cause).toBe(cause);
    expect(error.message).toBe(
      'clearFailPoint: configureFailPoint failed: TypeError: not authorized',
    );
  });

  it('a thrown null or string (no code to read)', async () => {
    const nullClient = fakeClient(() => {
      throw null;
    });
    const error = await rejection(setFailPoint(nullClient.client, { mode: 'alwaysOn', data }));
    expect(error).toBeInstanceOf(FailPointError);
    expect(error.message).toBe('setFailPoint: configureFailPoint failed: non-Error null');
    const stringClient = fakeClient(() => {
      throw 'down';
    });
    const error2 = await rejection(
      withFailPoint(stringClient.client, { mode: 'alwaysOn', data }, () => 1),
    );
    expect(error2.message).toBe('withFailPoint: configureFailPoint failed: non-Error string');
    expect(error2.cause).toBe('down');
  });
});

describe('withFailPoint: on, run, off in every case', () => {
  it('success: on, callback, off; resolves to the callback result', async () => {
    const fake = fakeClient();
    const result = await withFailPoint(fake.client, { mode: { times: 1 }, data }, async () => {
      expect(fake.sent).toHaveLength(1);
      return 'done';
    });
    expect(result).toBe('done');
    expect(fake.sent).toEqual([
      { configureFailPoint: 'failCommand', mode: { times: 1 }, data: { failCommands: ['find'] } },
      CLEAR,
    ]);
  });

  it('the fail point cannot be set: the callback never runs, nothing to clear', async () => {
    const fake = fakeClient(() => {
      throw Object.assign(new Error('x'), { code: 59 });
    });
    let ran = false;
    const error = await rejection(
      withFailPoint(fake.client, { mode: 'alwaysOn', data }, () => {
        ran = true;
      }),
    );
    expect(error).toBeInstanceOf(FailPointError);
    expect(ran).toBe(false);
    expect(fake.sent).toHaveLength(1);
  });

  it('the callback throws: the fail point is cleared, then its error is rethrown unchanged', async () => {
    const fake = fakeClient();
    const boom = new RangeError('boom');
    const error = await rejection(
      withFailPoint(fake.client, { mode: 'alwaysOn', data }, () => {
        throw boom;
      }),
    );
    expect(error).toBe(boom);
    expect(fake.sent[1]).toEqual(CLEAR);
    expect(fake.sent).toHaveLength(2);
  });

  it('the callback throws and the clear fails: FailPointError with both errors', async () => {
    const clearError = new Error('clear failed');
    const fake = fakeClient((_c, n) => {
      if (n === 2) throw clearError;
      return { ok: 1 };
    });
    const boom = new RangeError('boom');
    const error = await rejection(
      withFailPoint(fake.client, { mode: 'alwaysOn', data }, () => {
        throw boom;
      }),
    );
    expect(error).toBeInstanceOf(FailPointError);
    expect(error.name).toBe('FailPointError');
    expect(error.message).toBe(
      'withFailPoint: the callback failed, then turning the fail point off failed: it may still be on. Turn it off with clearFailPoint(client) (or restart the server) before running more tests',
    );
    const cause = error.cause as AggregateError;
    expect(cause).toBeInstanceOf(AggregateError);
    expect(cause.message).toBe('callback error, then clear error');
    expect(cause.errors).toHaveLength(2);
    expect(cause.errors[0]).toBe(boom);
    expect(cause.errors[1]).toBeInstanceOf(FailPointError);
    expect((cause.errors[1] as Error).message).toBe(
      'clearFailPoint: configureFailPoint failed: Error: clear failed',
    );
    expect((cause.errors[1] as Error).cause).toBe(clearError);
  });

  it('the callback succeeds and the clear fails: the clear error, not the result', async () => {
    const fake = fakeClient((_c, n) => {
      if (n === 2) throw new Error('clear failed');
      return { ok: 1 };
    });
    const error = await rejection(withFailPoint(fake.client, { mode: 'alwaysOn', data }, () => 1));
    expect(error).toBeInstanceOf(FailPointError);
    expect(error.message).toBe('clearFailPoint: configureFailPoint failed: Error: clear failed');
  });
});

describe('uniqueAppName', () => {
  it('default prefix, process id, a counter that grows by one, a short random suffix', () => {
    const pattern = new RegExp(`^mongo-atomics-test-${process.pid}-(\\d+)-([0-9a-z]{1,6})$`);
    const first = uniqueAppName().match(pattern);
    const second = uniqueAppName().match(pattern);
    expect(first).not.toBeNull();
    expect(second).not.toBeNull();
    expect(Number(second?.[1])).toBe(Number(first?.[1]) + 1);
  });

  it('a given prefix', () => {
    expect(uniqueAppName('mine')).toMatch(new RegExp(`^mine-${process.pid}-\\d+-[0-9a-z]{1,6}$`));
  });

  it('names differ', () => {
    const names = new Set(Array.from({ length: 50 }, () => uniqueAppName('p')));
    expect(names.size).toBe(50);
  });
});
