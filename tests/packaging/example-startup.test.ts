/**
 * `npm run example -- <name>` as a person runs it: the command from the repository root starts
 * the service, prints its URL and a first `curl`, that `curl` works, and Ctrl-C (SIGINT to the
 * process group, as a terminal sends it) stops everything cleanly.
 *
 * MongoDB: the test backend, through `MONGODB_URI` (the first choice of scripts/run-example.ts),
 * and once without it, on the embedded server the runner starts and stops itself. The examples'
 * databases on the test backend are dropped afterwards. Runs in the driver7 project only
 * (vitest.config.ts): the service uses this repository's driver, not the driver under test.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { MongoClient } from 'mongodb';
import { afterAll, describe, expect, it } from 'vitest';
import { testUri } from '../support/mongo.js';

const root = resolve(import.meta.dirname, '../..');
const EXAMPLES = ['carts', 'gamification', 'inventory', 'inventory/mongoose', 'jobs', 'ticketing'];
const run = promisify(execFile);

/** Collects a child's output; `waitFor` resolves with the first match of `pattern`. */
function watch(child: ChildProcess) {
  let output = '';
  const waiters: (() => void)[] = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const wake of waiters.splice(0)) wake();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  // 'close': the output pipes are closed, i.e. every process of the command has exited (npm
  // may exit before the service finishes shutting down).
  const exited = new Promise<string>((done) =>
    child.once('close', (code, signal) => done(signal ?? `exit ${code}`)),
  );
  return {
    get output() {
      return output;
    },
    exited,
    async waitFor(pattern: RegExp): Promise<RegExpExecArray> {
      for (;;) {
        const match = pattern.exec(output);
        if (match !== null) return match;
        const exitedFirst = await Promise.race([
          new Promise<false>((wake) => waiters.push(() => wake(false))),
          exited.then(() => true),
        ]);
        if (exitedFirst) {
          const last = pattern.exec(output);
          if (last !== null) return last;
          throw new Error(`exited before printing ${pattern}:\n${output}`);
        }
      }
    },
  };
}

const databases = new Set<string>();
afterAll(async () => {
  const client = await new MongoClient(testUri()).connect();
  try {
    const { databases: listed } = await client.db('admin').admin().listDatabases();
    for (const { name } of listed) {
      if (databases.has(name)) await client.db(name).dropDatabase();
    }
  } finally {
    await client.close();
  }
});

/**
 * Starts `npm run example -- <name>` in its own process group, runs the printed `curl`, sends
 * SIGINT to the group as a terminal's Ctrl-C does, and returns everything it printed.
 */
async function startCurlStop(name: string, env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn('npm', ['run', '--silent', 'example', '--', name], {
    cwd: root,
    env: { ...env, PORT: '0' },
    detached: true,
  });
  const out = watch(child);
  try {
    const [, url] = await out.waitFor(/listening on (http:\/\/localhost:\d+)/);
    const [, curl] = await out.waitFor(/^try:\n {2}(curl .+)$/m);
    expect(curl).toContain(url);
    // The printed command, as printed, plus flags that print only the status code.
    const { stdout } = await run('sh', [
      '-c',
      `${curl} --silent --output /dev/null --write-out '%{http_code}'`,
    ]);
    expect(stdout, `${curl}\n${out.output}`).toMatch(/^2\d\d$/);
  } finally {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGINT');
  }
  // Ctrl-C ends npm itself by the signal (as in a terminal); 'close' waits for every process
  // of the command: the service, then the runner that outlives it to stop an embedded server.
  expect(['exit 0', 'SIGINT'], out.output).toContain(await out.exited);
  expect(out.output).toContain('SIGINT: closing the server and the database connections');
  expect(out.output).toMatch(/stopped\n?$/);
  return out.output;
}

describe('npm run example -- <name>', () => {
  it.each(EXAMPLES)(
    '%s: starts, prints its URL and a first curl that works, stops on Ctrl-C',
    async (name) => {
      const before = await listDatabaseNames();
      const output = await startCurlStop(name, { ...process.env, MONGODB_URI: testUri() });
      expect(output).toContain('MongoDB: MONGODB_URI');
      for (const created of await listDatabaseNames()) {
        if (!before.includes(created)) databases.add(created);
      }
    },
    90_000,
  );

  it('without MONGODB_URI: runs on an embedded MongoDB it starts, and stops it after Ctrl-C', async () => {
    const { MONGODB_URI: _unset, ...env } = process.env;
    const output = await startCurlStop('ticketing', env);
    expect(output).toMatch(
      /MongoDB: (mongodb-memory-server replica set \(real mongod\)|offline MongoDB-compatible test server)/,
    );
  }, 180_000);

  it('an unknown name lists the examples and exits 2, starting nothing', async () => {
    const failed = await run('npm', ['run', '--silent', 'example', '--', 'nope'], {
      cwd: root,
    }).catch((error: { code: number; stderr: string }) => error);
    expect(failed).toMatchObject({ code: 2 });
    expect((failed as { stderr: string }).stderr).toContain(
      'unknown example "nope"; available: carts, gamification, inventory, inventory/mongoose, jobs, ticketing',
    );
  });
});

async function listDatabaseNames(): Promise<string[]> {
  const client = await new MongoClient(testUri()).connect();
  try {
    const { databases: listed } = await client.db('admin').admin().listDatabases();
    return listed.map((entry) => entry.name);
  } finally {
    await client.close();
  }
}
