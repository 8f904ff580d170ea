/** Argument checks shared by the testing kit; failures are {@link InvalidArgumentError}s. */
import { InvalidArgumentError } from '../errors.js';
import { describe } from '../validate.js';

export function fail(helper: string, option: string, problem: string): never {
  throw new InvalidArgumentError(helper, option, problem);
}

export function positiveInteger(helper: string, option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    fail(helper, option, `must be a positive integer, got ${describe(value)}`);
  }
  return value;
}

export function nonNegativeInteger(helper: string, option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(helper, option, `must be a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

export function callable(helper: string, option: string, value: unknown): void {
  if (typeof value !== 'function')
    fail(helper, option, `must be a function, got ${describe(value)}`);
}

export function nonEmptyString(helper: string, option: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    fail(helper, option, `must be a non-empty string, got ${describe(value)}`);
  }
  return value;
}

/** The name an error is tallied and reported under. */
export function errorName(error: unknown): string {
  if (error instanceof Error) return error.name;
  return `non-Error ${error === null ? 'null' : typeof error}`;
}

/** One line describing an error, for messages that list several. */
export function errorLine(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : errorName(error);
}
