import type { TestProject } from 'vitest/node';
import { type Backend, startBackend } from './backend.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mongoUri: string;
    backendKind: Backend['kind'];
  }
}

let backend: Backend | undefined;

export async function setup(project: TestProject): Promise<void> {
  const notes: string[] = [];
  backend = await startBackend(notes);
  for (const note of notes) console.log(`[mongo-atomics tests] ${note}`);
  console.log(`[mongo-atomics tests] backend: ${backend.description} at ${backend.uri}`);
  project.provide('mongoUri', backend.uri);
  project.provide('backendKind', backend.kind);
}

export async function teardown(): Promise<void> {
  await backend?.stop();
}
