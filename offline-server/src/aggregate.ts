/**
 * The `aggregate` command's pipeline, run by mingo with our BSON-aware context: `$match` uses
 * `compileFilter`, `$sort` uses `compareBySort`, comparisons and `$min`/`$max` use the BSON order
 * (see `BSON_CONTEXT` in query.ts).
 *
 * Stages that read or write other collections, or need server state, are refused with a clear
 * message; stage names mongod does not know fail like mongod (40324).
 */
import type { Document } from 'bson';
import { Aggregator } from 'mingo/aggregator';
import { ErrorCode, ServerError } from './errors.js';
import { decodeValue, encodeCopy, encodePipeline } from './mingo-names.js';
import { asServerError, mingoOptions, pinNow } from './query.js';
import { KNOWN_STAGES } from './update.js';
import { isPlainObject } from './values.js';

/** Known to mongod, not implemented here (they need other collections or server state). */
export const UNSUPPORTED_STAGES: ReadonlySet<string> = new Set([
  '$lookup',
  '$graphLookup',
  '$unionWith',
  '$out',
  '$merge',
  '$geoNear',
  '$search',
  '$changeStream',
  '$collStats',
  '$indexStats',
  '$currentOp',
  '$listSessions',
  '$planCacheStats',
  '$documents',
]);

function validateStage(stage: unknown): void {
  if (!isPlainObject(stage) || Object.keys(stage).length !== 1) {
    throw new ServerError(
      ErrorCode.Location40323,
      'A pipeline stage specification object must contain exactly one field.',
    );
  }
  const name = Object.keys(stage)[0] as string;
  if (!KNOWN_STAGES.has(name)) {
    throw new ServerError(ErrorCode.Location40324, `Unrecognized pipeline stage name: '${name}'`);
  }
  if (UNSUPPORTED_STAGES.has(name)) {
    throw new ServerError(
      ErrorCode.CommandNotFound,
      `The offline test server does not implement the aggregation stage ${name}`,
    );
  }
  if (name === '$facet') {
    for (const sub of Object.values(stage.$facet as Document)) {
      if (Array.isArray(sub)) sub.forEach(validateStage);
    }
  }
}

/** Runs an aggregation pipeline over documents (which are not mutated). */
export function runPipeline(docs: Document[], pipeline: Document[]): Document[] {
  if (!Array.isArray(pipeline)) {
    throw new ServerError(
      ErrorCode.TypeMismatch,
      "'pipeline' option must be specified as an array",
    );
  }
  pipeline.forEach(validateStage);
  try {
    // Special field names are renamed for mingo and back (mingo-names.ts).
    const aggregator = new Aggregator(encodePipeline(pinNow(pipeline, new Date())), mingoOptions());
    return decodeValue(aggregator.run(docs.map((doc) => encodeCopy(doc))) as Document[]);
  } catch (error) {
    throw asServerError(error);
  }
}
