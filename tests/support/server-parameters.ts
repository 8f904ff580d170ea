/**
 * Runs a test body with a server parameter changed (setParameter on admin), holding the
 * cross-process `server-parameters` lock, and restores the old value afterwards. Files that use
 * it must be `*.serial.test.ts`: a server-wide parameter affects every other file's commands.
 */
import type { MongoClient } from 'mongodb';
import { expect } from 'vitest';
import { serverLock } from './failpoints.js';

export async function withServerParameter<T>(
  client: MongoClient,
  name: string,
  value: number,
  body: () => Promise<T>,
): Promise<T> {
  const release = await serverLock('server-parameters');
  const admin = client.db('admin');
  const read = async () => (await admin.command({ getParameter: 1, [name]: 1 }))[name] as unknown;
  const original = await read();
  expect(typeof original).toBe('number');
  try {
    await admin.command({ setParameter: 1, [name]: value });
    expect(await read()).toBe(value);
    return await body();
  } finally {
    try {
      await admin.command({ setParameter: 1, [name]: original });
      expect(await read()).toBe(original);
    } finally {
      await release();
    }
  }
}
