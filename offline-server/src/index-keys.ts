/**
 * Index keys: the canonical strings one document contributes to an index, for unique checks.
 *
 * Rules (https://www.mongodb.com/docs/manual/core/index-multikey/ , mongod
 * `src/mongo/db/index/btree_key_generator.cpp`): a missing field indexes as null; an array field
 * is multikey (one key per element, an empty array as `undefined`, which differs from null); an
 * object element of an array that lacks the sub-field indexes as null; a compound index takes the
 * cartesian product, and at most one of its fields may be an array ("parallel arrays").
 */
import type { Document } from 'bson';
import { ServerError } from './errors.js';
import { compileFilter } from './query.js';
import {
  EMPTY_ARRAY_SORT_KEY,
  isArrayIndex,
  isPlainObject,
  splitPath,
  valueKey,
} from './values.js';

/** mongod's CannotIndexParallelArrays. */
const CANNOT_INDEX_PARALLEL_ARRAYS = 171;

interface FieldKeys {
  readonly values: unknown[];
  readonly multikey: boolean;
}

function fieldKeys(doc: Document, path: string): FieldKeys {
  const parts = splitPath(path);
  let multikey = false;
  const walk = (value: unknown, i: number): unknown[] => {
    if (i === parts.length) {
      if (!Array.isArray(value)) return [value === undefined ? null : value];
      multikey = true;
      return value.length === 0 ? [EMPTY_ARRAY_SORT_KEY] : value;
    }
    const part = parts[i] as string;
    if (Array.isArray(value)) {
      if (isArrayIndex(part)) return walk(value[Number(part)], i + 1);
      multikey = true;
      if (value.length === 0) return [null];
      return value.flatMap((element) => (isPlainObject(element) ? walk(element, i) : [null]));
    }
    if (isPlainObject(value))
      return walk(Object.hasOwn(value, part) ? value[part] : undefined, i + 1);
    return [null];
  };
  return { values: walk(doc, 0), multikey };
}

/**
 * The distinct key strings `doc` contributes to an index with `keyPattern`. Two documents
 * collide in a unique index iff they share a key; one document may repeat a key freely.
 */
export function indexKeys(doc: Document, keyPattern: Document): string[] {
  const fields = Object.keys(keyPattern);
  const perField = fields.map((field) => fieldKeys(doc, field));
  const arrays = fields.filter((_, i) => perField[i]?.multikey);
  if (arrays.length > 1) {
    throw new ServerError(
      CANNOT_INDEX_PARALLEL_ARRAYS,
      `cannot index parallel arrays [${arrays[1]}] [${arrays[0]}]`,
    );
  }
  let keys: string[] = [''];
  perField.forEach(({ values }, i) => {
    const parts = [...new Set(values.map(valueKey))];
    keys = keys.flatMap((prefix) => parts.map((part) => (i === 0 ? part : `${prefix},${part}`)));
  });
  return [...new Set(keys)];
}

/** Whether a document belongs to a partial index (`partialFilterExpression`). */
export function matchesPartialFilter(doc: Document, partialFilterExpression: Document): boolean {
  return compileFilter(partialFilterExpression)(doc);
}
