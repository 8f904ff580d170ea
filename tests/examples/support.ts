/**
 * Helpers for the example apps' HTTP tests: start an app on port 0, call it with Node's own
 * `fetch`, and check that a request wrote nothing (from the driver's command monitoring).
 */
import type { CommandLog } from '../support/mongo.js';

/** Listens on a free port (the examples' own helper, which the demo uses too). */
export { type Listening, listen } from '../../examples/shared/listen.js';

// biome-ignore lint/suspicious/noExplicitAny: replies are asserted field by field in tests
export interface Reply<T = any> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

export interface CallOptions {
  /** A JSON value (serialized), or a string sent as it is (for malformed JSON). */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** One HTTP call; the reply's body parsed as JSON (every example answers JSON, errors included). */
// biome-ignore lint/suspicious/noExplicitAny: as above
export async function call<T = any>(
  base: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text === '' ? undefined : JSON.parse(text),
    headers: response.headers,
  };
}

/** Commands that change data (or indexes); a rejected request must send none of them. */
const WRITES = new Set([
  'insert',
  'update',
  'delete',
  'findAndModify',
  'bulkWrite',
  'createIndexes',
  'drop',
  'commitTransaction',
]);

/** Runs `fn` and returns the names of the write commands the client sent meanwhile. */
export async function writesDuring(
  commands: CommandLog,
  fn: () => Promise<unknown>,
): Promise<string[]> {
  commands.reset();
  await fn();
  return commands.names().filter((name) => WRITES.has(name));
}
