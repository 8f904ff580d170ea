/**
 * The MongoDB the bench runs on, chosen as the tests choose it (tests/support/backend.ts):
 * MONGODB_URI, else a mongodb-memory-server replica set, else the offline server;
 * MONGO_ATOMICS_TEST_BACKEND=uri|memory-server|offline forces one.
 *
 * Two differences from the tests:
 * - The offline server runs in a child process (offline-server/bin.ts), not in the bench's own
 *   event loop as the tests run it. In-process, every request's server work would be timed as
 *   client time and the two would compete for one thread; a real mongod is another process too.
 * - It runs from a bundle built at start (`bundleOfflineServer`), not through the tsx loader.
 *   The loader costs the server time that mongod does not spend and that falls unevenly on the
 *   variants compared: it names every function each time one is created (a `defineProperty`
 *   per closure per command), and under Node mingo resolves to its CommonJS build, whose every
 *   internal call goes through a property getter. The bundle has neither, so a pipeline or an
 *   expression costs what its evaluation costs. Same sources, same mingo version.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'tsup';
import { startMemoryServer } from '../offline-server/src/embedded.js';
import { type Backend, startBackend } from '../tests/support/backend.js';

export async function startBenchBackend(notes: string[]): Promise<Backend> {
  const forced = process.env.MONGO_ATOMICS_TEST_BACKEND;
  if (forced === 'offline') return spawnOffline();
  if ((forced !== undefined && forced !== '') || process.env.MONGODB_URI)
    return startBackend(notes);
  try {
    return await startMemoryServer();
  } catch (error) {
    const message = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    notes.push(`mongodb-memory-server unavailable (${message.trim()}); using the offline server`);
  }
  return spawnOffline();
}

/**
 * offline-server/bin.ts as one ES module in a new directory under node_modules/.cache (where
 * `bson` resolves): its code and mingo's (the package's ES module build, which Node's `node`
 * condition passes over) in one scope, `bson` and Node's modules imported. Returns the file
 * and a function that removes the directory.
 */
export async function bundleOfflineServer(): Promise<{ file: string; remove: () => void }> {
  const cache = resolve(import.meta.dirname, '../node_modules/.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, 'mongo-atomics-bench-server-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    await build({
      config: false,
      entry: { 'offline-server': resolve(import.meta.dirname, '../offline-server/bin.ts') },
      outDir: dir,
      format: ['esm'],
      outExtension: () => ({ js: '.mjs' }),
      target: 'node20',
      // Neutral, so that the `node` condition does not pick mingo's CommonJS build.
      platform: 'neutral',
      external: [/^node:/, 'bson'],
      noExternal: ['mingo'],
      splitting: false,
      sourcemap: false,
      dts: false,
      silent: true,
      esbuildOptions(options) {
        options.conditions = ['import', 'default'];
        options.mainFields = ['module', 'main'];
      },
    });
  } catch (error) {
    remove();
    throw error;
  }
  return { file: join(dir, 'offline-server.mjs'), remove };
}

async function spawnOffline(): Promise<Backend> {
  const bundle = await bundleOfflineServer();
  const child = spawn(process.execPath, [bundle.file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const uri = await new Promise<string>((done, fail) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('mongodb://'));
      if (line !== undefined) done(line.trim());
    });
    child.once('exit', (code) =>
      fail(new Error(`offline server exited (${code}) before printing its URI`)),
    );
    child.once('error', fail);
  }).catch((error: unknown) => {
    bundle.remove();
    throw error;
  });
  return {
    kind: 'offline',
    uri,
    description:
      'offline MongoDB-compatible test server (offline-server/, bundled, in a child process)',
    stop: async () => {
      await stopChild(child);
      bundle.remove();
    },
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((done) => {
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });
}
