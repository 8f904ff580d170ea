import {
  type ClientSession,
  type Document,
  type MongoClient,
  MongoError,
  MongoServerError,
  type ObjectId,
} from 'mongodb';
import { expect } from 'vitest';
import { rejectionOf } from '../support/async.js';

export { rejectionOf, sleep } from '../support/async.js';

/** A schema-less document whose _id may be of any BSON type (the driver's default is ObjectId). */
export interface Doc extends Document {
  _id?: number | string | ObjectId | Document;
}

/** Resolves to what `promise` rejected with; fails the test if it resolved. */

/** Resolves to the MongoServerError that `promise` rejected with. */
export async function serverError(promise: Promise<unknown>): Promise<MongoServerError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(MongoServerError);
  return error as MongoServerError;
}

/** Resolves to the MongoError (server, network or driver) that `promise` rejected with. */
export async function mongoError(promise: Promise<unknown>): Promise<MongoError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(MongoError);
  return error as MongoError;
}

/** Tracks whether a promise has settled yet, without awaiting it. */
export function track<T>(promise: Promise<T>): { readonly settled: boolean; promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

export { barrier } from '../support/race.js';

/** Runs `fn` with a new session of `client`, ending the session afterwards. */
export async function withSession<T>(
  client: MongoClient,
  fn: (session: ClientSession) => Promise<T>,
): Promise<T> {
  const session = client.startSession();
  try {
    return await fn(session);
  } finally {
    await session.endSession();
  }
}
