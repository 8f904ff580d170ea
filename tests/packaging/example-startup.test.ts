/**
 * `npm run example -- <name>` as a person runs it: the command from the repository root starts
 * the service, prints its URL and a first `curl`, that `curl` works, and Ctrl-C (SIGINT to the
 * process group, as a terminal sends it) stops everything cleanly.
 *
 * MongoDB: the test backend, through `MONGODB_URI` (the first choice of examples/shared/mongo.ts).
 * The examples' databases are dropped afterwards. Runs in the driver7 project only
 * (vitest.config.ts): the service uses this repository's driver, not the driver under test.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { MongoClient } from 'mongodb';
import { afterAll, describe, expect, it } from 'vitest';
import { testUri } from '../support/mongo.js';

const root = resolve(import.meta.dirname, '../..');
const EXAMPLES = ['carts', 'gamification', 'inventory', 'inventory/mongoose', 'ticketing'];
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

describe('npm run example -- <name>', () => {
  it.each(EXAMPLES)(
    '%s: starts, prints its URL and a first curl that works, stops on Ctrl-C',
    async (name) => {
      const before = await listDatabaseNames();
      const child = spawn('npm', ['run', '--silent', 'example', '--', name], {
        cwd: root,
        env: { ...process.env, PORT: '0', MONGODB_URI: testUri() },
        detached: true, // its own process group, which SIGINT is sent to, as a terminal does
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
      // Ctrl-C ends npm itself by the signal (as in a terminal); the service exits 0 on its own
      // once it has closed everything, which the last line says.
      expect(['exit 0', 'SIGINT'], out.output).toContain(await out.exited);
      expect(out.output).toContain('SIGINT: closing the server and the database connections');
      expect(out.output).toMatch(/stopped\n?$/);
      for (const created of await listDatabaseNames()) {
        if (!before.includes(created)) databases.add(created);
      }
    },
    90_000,
  );
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
