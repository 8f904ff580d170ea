/**
 * Starts the test backend once per run, even though each vitest project (driver7, driver6)
 * runs this setup: the backend lives on `globalThis` and is stopped by the last teardown.
 */
import type { TestProject } from 'vitest/node';
import { type Backend, startBackend } from './backend.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mongoUri: string;
    backendKind: Backend['kind'];
  }
}

interface Shared {
  backend: Promise<Backend>;
  users: number;
}

const KEY = Symbol.for('mongo-atomics.test-backend');
const registry = globalThis as typeof globalThis & { [KEY]?: Shared };

async function start(): Promise<Backend> {
  const notes: string[] = [];
  const backend = await startBackend(notes);
  for (const note of notes) console.log(`[mongo-atomics tests] ${note}`);
  console.log(`[mongo-atomics tests] backend: ${backend.description} at ${backend.uri}`);
  return backend;
}

export async function setup(project: TestProject): Promise<() => Promise<void>> {
  let shared = registry[KEY];
  if (shared === undefined) {
    shared = { backend: start(), users: 0 };
    registry[KEY] = shared;
  }
  shared.users += 1;
  const backend = await shared.backend;
  project.provide('mongoUri', backend.uri);
  project.provide('backendKind', backend.kind);
  return async () => {
    const current = registry[KEY];
    if (current === undefined) return;
    current.users -= 1;
    if (current.users === 0) {
      delete registry[KEY];
      await (await current.backend).stop();
    }
  };
}
