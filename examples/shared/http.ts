/**
 * The HTTP plumbing every example shares: request validation with zod, and the error and
 * not-found handlers. A validation failure is a 400 whose JSON names the offending field, and
 * it happens before any database call, so bad input never writes.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { isRetryBudgetExhaustedError } from 'mongo-atomics';
import { ObjectId } from 'mongodb';
import { z } from 'zod';

/** An error that is an HTTP response: the error handler sends `status` and `body` as they are. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: { readonly error: string } & Record<string, unknown>,
  ) {
    super(`${status} ${body.error}`);
    this.name = 'HttpError';
  }
}

/** Where a value came from, named in the error when the value has no field path of its own. */
export type RequestPart = 'body' | 'params' | 'query' | 'headers';

/**
 * Validates `value` with `schema`. On failure throws a 400 `HttpError`:
 * `{ error: 'invalidRequest', field, message, issues }`, where `field` is the dotted path of the
 * first offending field (`items.0.qty`; for a key a strict object does not allow, that key:
 * `$where`), or the request part itself (`body`) when the whole value is wrong.
 */
export function parse<T>(schema: z.ZodType<T>, value: unknown, part: RequestPart): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    // An unknown key is reported at its object's path; name the key itself.
    const path =
      issue.code === 'unrecognized_keys' ? [...issue.path, ...issue.keys.slice(0, 1)] : issue.path;
    return {
      field: path.length === 0 ? part : path.map(String).join('.'),
      message: issue.message,
    };
  });
  const [first] = issues;
  throw new HttpError(400, {
    error: 'invalidRequest',
    field: first?.field ?? part,
    message: first?.message ?? 'invalid',
    issues,
  });
}

/** A 24-hex-digit ObjectId string, turned into an `ObjectId`; anything else (objects with `$` operators included) is rejected. */
export const objectId = z
  .string()
  .regex(/^[0-9a-f]{24}$/i, 'must be a 24-hex-digit ObjectId')
  .transform((hex) => ObjectId.createFromHexString(hex));

/** A quantity: a whole number from 1 to `max` (rejects 0, negatives, fractions, strings, huge values). */
export const quantity = (max: number) =>
  z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(max, `must be at most ${max}`);

/** An opaque id chosen by clients (user ids, operation ids): 1–64 letters, digits, `_` or `-`. */
export const token = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1–64 letters, digits, "_" or "-"');

/** Seconds a client is asked to wait after a 503 busy. */
const BUSY_RETRY_AFTER_SECONDS = 1;

/** Unknown routes: 404 with a JSON body, like every other error. */
export const notFound: RequestHandler = (req, res) => {
  res.status(404).json({ error: 'notFound', message: `no route for ${req.method} ${req.path}` });
};

/**
 * Turns errors into JSON responses: `HttpError`s as they are, malformed or oversized JSON bodies
 * (from `express.json()`) into 400/413 naming `body`, a charset or Content-Encoding it cannot
 * read into 415 naming `headers`, the body parsers' other 4xx as they are, a transaction that ran
 * out of retries before committing into 503 busy with Retry-After, anything else into a 500
 * without details.
 */
export const errorHandler: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
  if (error instanceof HttpError) {
    res.status(error.status).json(error.body);
    return;
  }
  const type = (error as { type?: unknown } | null)?.type;
  if (type === 'entity.parse.failed') {
    res
      .status(400)
      .json({ error: 'malformedJson', field: 'body', message: 'body is not valid JSON' });
    return;
  }
  if (type === 'entity.too.large') {
    res.status(413).json({ error: 'bodyTooLarge', field: 'body', message: 'body is too large' });
    return;
  }
  if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    // The client's Content-Type charset or Content-Encoding, which express.json() cannot read:
    // the client's mistake, so a 415 it can act on, not a 500 that pages the on-call engineer.
    const charset = type === 'charset.unsupported';
    res.status(415).json({
      error: charset ? 'unsupportedCharset' : 'unsupportedEncoding',
      field: 'headers',
      message: charset
        ? 'the body must be JSON in UTF-8'
        : 'the body must be sent without Content-Encoding, or gzip, deflate or br',
    });
    return;
  }
  // Any other client error from express's body parsers (an aborted request, a body shorter
  // than its Content-Length): their own 4xx status and safe-to-show message.
  const status = (error as { status?: unknown } | null)?.status;
  const expose = (error as { expose?: unknown } | null)?.expose;
  if (
    typeof type === 'string' &&
    expose === true &&
    typeof status === 'number' &&
    status >= 400 &&
    status < 500
  ) {
    res
      .status(status)
      .json({ error: 'badRequestBody', field: 'body', message: String((error as Error).message) });
    return;
  }
  if (
    isRetryBudgetExhaustedError(error) &&
    (error.reason === 'timeout' || error.reason === 'maxAttempts')
  ) {
    // A transaction lost to concurrent writers until its budget ran out, before any commit was
    // sent: nothing was written. That is load, not a bug: 503 with Retry-After, not logged.
    // (`commitOutcomeUnknown` may have committed and `abortedBeforeCommit` is a bug in the
    // callback: both fall through to the 500 below, which an operator must look at.)
    res.set('Retry-After', String(BUSY_RETRY_AFTER_SECONDS));
    res.status(503).json({
      error: 'busy',
      message: 'too many concurrent changes, nothing was written: try again',
      retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS,
    });
    return;
  }
  // An unexpected failure: report it where the operator looks, answer without internals.
  console.error(error);
  res.status(500).json({ error: 'internal', message: 'internal server error' });
};
