/**
 * The MongoDB the bench runs on, chosen as the tests choose it (tests/support/backend.ts):
 * MONGODB_URI, else a mongodb-memory-server replica set, else the offline server;
 * MONGO_ATOMICS_TEST_BACKEND=uri|memory-server|offline forces one.
 *
 * One difference: the offline server runs in a child process (offline-server/bin.ts), not in
 * the bench's own event loop as the tests run it. In-process, every request's server work would
 * be timed as client time and the two would compete for one thread; a real mongod is another
 * process too.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
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

async function spawnOffline(): Promise<Backend> {
  const bin = resolve(import.meta.dirname, '../offline-server/bin.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', bin], {
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
  });
  return {
    kind: 'offline',
    uri,
    description: 'offline MongoDB-compatible test server (offline-server/, child process)',
    stop: () => stopChild(child),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((done) => {
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });
}
