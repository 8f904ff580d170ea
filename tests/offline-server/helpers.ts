import { expect } from 'vitest';
import { ServerError } from '../../offline-server/src/errors.js';

/** Runs `fn` and returns the ServerError it throws (failing the test if it does not). */
export function serverError(fn: () => unknown): ServerError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ServerError);
    return error as ServerError;
  }
  throw new Error('expected a ServerError');
}
