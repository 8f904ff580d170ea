/**
 * What mongod 7.0 checks before it stores a document, and the strict parsing of write
 * statements. Each rule names the server source it follows.
 */
import type { Document } from 'bson';
import { ErrorCode, ServerError } from './errors.js';
import { isPlainObject } from './values.js';

/**
 * The nesting depth a stored document may have: `BSONDepth::getMaxDepthForUserStorage()`,
 * that is `maxBSONDepth` (200 by default) minus `kExtraSystemDepthLevels` (20), kept free for
 * the oplog entries built around a document (src/mongo/bson/bson_depth.{h,cpp}). The manual
 * (reference/limits, "Nested Depth for BSON Documents") promises "no more than 100 levels"; that
 * is the supported level, the server refuses only beyond this one.
 */
export const MAX_STORAGE_DEPTH = 180;

/**
 * The nesting depth of a document as mongod counts it: the document itself is level 1, every
 * non-empty embedded document or array one more (empty ones do not count: insert.cpp
 * validateDepth; storage_validation.cpp counts elements, which an empty one has none of).
 * Stops counting once past `limit`, so a pathological value costs no more than `limit` frames.
 */
function depthExceeds(value: Document | unknown[], limit: number): boolean {
  const frames: [values: unknown[], level: number][] = [[Object.values(value), 1]];
  while (frames.length > 0) {
    const [values, level] = frames.pop() as [unknown[], number];
    for (const child of values) {
      const nested = Array.isArray(child)
        ? child
        : isPlainObject(child)
          ? Object.values(child)
          : undefined;
      if (nested === undefined || nested.length === 0) continue;
      if (level + 1 > limit) return true;
      frames.push([nested, level + 1]);
    }
  }
  return false;
}

/**
 * The first `$`-prefixed field name inside an `_id` document, as `BSONObj::storageValidEmbedded`
 * finds it (src/mongo/bson/bsonobj.cpp): at any depth, in embedded documents and arrays, except
 * a DBRef (`$ref` string first, then `$id`, then an optional `$db` string).
 */
function dollarPrefixedName(doc: Document): string | undefined {
  const entries = Object.entries(doc);
  let start = 0;
  const [first, second, third] = entries;
  if (first?.[0] === '$ref' && typeof first[1] === 'string' && second?.[0] === '$id') {
    start = third?.[0] === '$db' && typeof third[1] === 'string' ? 3 : 2;
  }
  for (const [index, [name, value]] of entries.entries()) {
    if (index >= start && name.startsWith('$')) return name;
    const nested = Array.isArray(value) ? { ...value } : isPlainObject(value) ? value : undefined;
    if (nested === undefined) continue;
    const found = dollarPrefixedName(nested);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The `_id` rules of `storage_validation::storageValidIdField`
 * (src/mongo/db/update/storage_validation.cpp), which 7.0 applies on insert (ops/insert.cpp
 * fixDocumentForInsert) and to the result of an update or upsert.
 */
export function validateIdField(id: unknown): void {
  const type = Array.isArray(id)
    ? 'array'
    : id instanceof RegExp || (id as { _bsontype?: string } | null)?._bsontype === 'BSONRegExp'
      ? 'regex'
      : id === undefined
        ? 'undefined'
        : undefined;
  if (type !== undefined) {
    throw new ServerError(ErrorCode.InvalidIdField, `The '_id' value cannot be of type ${type}`);
  }
  if (isPlainObject(id)) {
    const name = dollarPrefixedName(id);
    if (name !== undefined) {
      throw new ServerError(
        ErrorCode.DollarPrefixedFieldName,
        `_id fields may not contain '$'-prefixed fields: ${name} is not valid for storage.`,
      );
    }
  }
}

/** An inserted document: depth first, then `_id` (ops/insert.cpp fixDocumentForInsert). */
export function validateForInsert(doc: Document): void {
  if (depthExceeds(doc, MAX_STORAGE_DEPTH)) {
    throw new ServerError(
      ErrorCode.Overflow,
      `cannot insert document because it exceeds ${MAX_STORAGE_DEPTH} levels of nesting`,
    );
  }
  if (Object.hasOwn(doc, '_id')) validateIdField(doc._id);
}

/** The document an update or upsert produced (storage_validation.cpp storageValid). */
export function validateForUpdate(doc: Document): void {
  if (Object.hasOwn(doc, '_id')) validateIdField(doc._id);
  if (depthExceeds(doc, MAX_STORAGE_DEPTH)) {
    throw new ServerError(
      ErrorCode.Overflow,
      `Document exceeds maximum nesting depth of ${MAX_STORAGE_DEPTH}`,
    );
  }
}
