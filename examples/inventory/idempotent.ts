/**
 * Runs a creating request once per `Idempotency-Key` header and answers every retry of it with
 * the first response (status and body). Used by `POST /orders` and `POST /checkouts` (seed 002's
 * "checkout creation double submit": two clicks, one checkout).
 *
 * Without the header the work still runs in a transaction (`withRetryingTransaction`), so what
 * it writes commits together or not at all.
 */
import { createHash } from 'node:crypto';
import type { Request, Response } from 'express';
import {
  isIdempotencyKeyConflictError,
  withIdempotencyKey,
  withRetryingTransaction,
} from 'mongo-atomics';
import type { ClientSession, Collection, MongoClient } from 'mongodb';
import { z } from 'zod';
import { HttpError, parse, token } from '../shared/http.js';

/** A response as plain JSON, so it can be stored with the key and replayed as it is. */
export interface StoredResponse {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** Only the header we read is validated; every other header passes untouched. */
const idempotencyHeader = z.object({ 'idempotency-key': token.optional() });

export interface RespondOnceOptions {
  /** The MongoClient of `keys` and of the collections `run` writes. */
  readonly client: MongoClient;
  /** The idempotency records (TTL index: `ensureIdempotencyIndexes`, in setup.ts). */
  readonly keys: Collection;
  /** Keeps keys of different endpoints apart (`orders`, `checkouts`). */
  readonly scope: string;
  /** The validated request body in a canonical form: the same key with another body is refused. */
  readonly canonicalBody: string;
  /**
   * The work, in the transaction of `session`. Its returned response is stored and replayed,
   * whatever its status (a retry of a 409 gets the same 409: send a new key to try again). A
   * thrown error is not stored: the key is released and a retry runs the work again.
   */
  readonly run: (session: ClientSession) => Promise<StoredResponse>;
}

export async function respondOnce(
  req: Request,
  res: Response,
  options: RespondOnceOptions,
): Promise<void> {
  const key = parse(idempotencyHeader, req.headers, 'headers')['idempotency-key'];
  if (key === undefined) {
    const response = await withRetryingTransaction(options.client, options.run);
    res.status(response.status).json(response.body);
    return;
  }
  try {
    // Transaction mode (`client`): the stored response commits in the same transaction as the
    // work's writes, so "did the work" and "remembered the response" cannot be separated by a
    // crash, and a duplicate never runs the work a second time.
    const result = await withIdempotencyKey<StoredResponse>(options.keys, {
      key: `${options.scope}:${key}`,
      // The scope already names the endpoint; the request's own path is left out: express
      // routes `/ORDERS/` like `/orders`, and a retry spelled so is the same request.
      fingerprint: createHash('sha256')
        .update(`${options.scope} ${options.canonicalBody}`)
        .digest('hex'),
      client: options.client,
      // A duplicate that arrives while the first request runs waits for its response instead
      // of getting a "try later": a double click then sees the same answer twice.
      wait: { timeoutMs: 10_000, intervalMs: 25 },
      fn: ({ session }) => options.run(session),
    });
    if (result.outcome === 'inProgress') {
      res
        .status(409)
        .set('Retry-After', '1')
        .json({ error: 'requestInProgress', message: 'a request with this key is still running' });
      return;
    }
    if (result.outcome === 'replayed') res.set('Idempotent-Replayed', 'true');
    res.status(result.value.status).json(result.value.body);
  } catch (error) {
    if (isIdempotencyKeyConflictError(error)) {
      // 422, as the IETF Idempotency-Key draft recommends for a key reused with another payload.
      throw new HttpError(422, {
        error: 'idempotencyKeyReused',
        field: 'idempotency-key',
        message: 'this Idempotency-Key was used for a different request',
      });
    }
    throw error;
  }
}
