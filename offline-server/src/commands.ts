/**
 * Command handlers. Each runs synchronously against a `WriteUnit`, so it is atomic with respect
 * to every other command; the dispatcher (server.ts) deals with sessions, transactions, fail
 * points, blocking and error labels. Reply shapes follow mongod's command reference.
 */
import { type Document, ObjectId, type Timestamp } from 'bson';
import { runPipeline } from './aggregate.js';
import type { CursorRegistry } from './cursors.js';
import { ErrorCode, isServerError, ServerError } from './errors.js';
import { indexKeys, matchesPartialFilter } from './index-keys.js';
import { checkingOptions, isSimpleCollation } from './options.js';
import {
  applyProjection,
  compareBySort,
  compileFilter,
  projector,
  resolveConstants,
  resolveLet,
  withCommandVariables,
} from './query.js';
import {
  type Collection,
  duplicateKey,
  type IndexSpec,
  indexApplies,
  type Storage,
  type WriteUnit,
} from './storage.js';
import { validateForInsert, validateForUpdate } from './storage-validation.js';
import { applyUpdate, upsertSeedDocument } from './update.js';
import { getPath, valueKey } from './values.js';

export interface CommandContext {
  readonly db: string;
  readonly command: Document;
  readonly unit: WriteUnit;
  readonly storage: Storage;
  readonly cursors: CursorRegistry;
  readonly inTransaction: boolean;
  /** A snapshot read outside a transaction: the time it reads at, reported in its reply. */
  readonly atClusterTime?: Timestamp | undefined;
}

/** Commands mongod runs with read concern "snapshot" outside a transaction (manual, read-concern-snapshot). */
export const SNAPSHOT_READS = new Set(['find', 'aggregate', 'distinct']);

export type Handler = (ctx: CommandContext) => Document;

/** Commands mongod refuses inside a multi-document transaction. */
export const NOT_IN_TRANSACTION = new Set([
  'count',
  'listCollections',
  'listIndexes',
  'drop',
  'dropDatabase',
  'dropIndexes',
  'listDatabases',
]);

// ---------------------------------------------------------------------------------------------
// Argument helpers

function collectionName(ctx: CommandContext, name: string): string {
  const value = ctx.command[name];
  if (typeof value !== 'string' || value.length === 0) {
    throw new ServerError(
      ErrorCode.InvalidNamespace,
      `collection name has invalid type ${value === undefined ? 'missing' : typeof value}`,
    );
  }
  return value;
}

function optionalDocument(command: Document, field: string): Document | undefined {
  const value = command[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ServerError(
      ErrorCode.TypeMismatch,
      `BSON field '${field}' is the wrong type '${Array.isArray(value) ? 'array' : typeof value}', expected type 'object'`,
    );
  }
  return value as Document;
}

function optionalNumber(command: Document, field: string): number | undefined {
  const value = command[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') {
    throw new ServerError(
      ErrorCode.TypeMismatch,
      `BSON field '${field}' is the wrong type, expected a number`,
    );
  }
  return value;
}

function requireArray(command: Document, field: string): Document[] {
  const value = command[field];
  if (!Array.isArray(value)) {
    throw new ServerError(
      ErrorCode.FailedToParse,
      `BSON field '${field}' is missing or is not an array`,
    );
  }
  return value as Document[];
}

/** A filter value that pins `_id` to one value, so the document can be found by key. */
function idEquality(filter: Document): string | undefined {
  if (!Object.hasOwn(filter, '_id')) return undefined;
  const value = filter._id;
  if (value instanceof RegExp || value === undefined) return undefined;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      const keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === '$eq') return valueKey((value as Document).$eq);
      if (keys.some((key) => key.startsWith('$'))) return undefined;
    } else if ((value as { _bsontype?: string })._bsontype === 'BSONRegExp') {
      return undefined;
    }
  }
  return valueKey(value);
}

/** Documents matching `filter`, as `[idKey, doc]`, in natural order (or by `_id` lookup). */
function matching(
  ctx: CommandContext,
  collection: Collection | undefined,
  filter: Document,
): [string, Document][] {
  if (collection === undefined) return [];
  const matches = compileFilter(filter);
  const id = idEquality(filter);
  if (id !== undefined) {
    const doc = ctx.unit.get(collection, id);
    return doc !== null && matches(doc) ? [[id, doc]] : [];
  }
  const result: [string, Document][] = [];
  for (const entry of ctx.unit.scan(collection)) if (matches(entry[1])) result.push(entry);
  return result;
}

function sorted(entries: [string, Document][], sort: Document | undefined): [string, Document][] {
  if (sort === undefined || Object.keys(sort).length === 0) return entries;
  const compare = compareBySort(sort);
  return [...entries].sort((a, b) => compare(a[1], b[1]));
}

/** A copy with `_id` first, generating an ObjectId when missing (as mongod does on insert). */
function withId(doc: Document): Document {
  if (Object.hasOwn(doc, '_id')) {
    const { _id, ...rest } = doc;
    return { _id, ...rest };
  }
  return { _id: new ObjectId(), ...doc };
}

/** Errors that belong in `writeErrors` rather than failing the whole command. */
function isWriteError(error: unknown, ctx: CommandContext): error is ServerError {
  if (!isServerError(error)) return false;
  // Inside a transaction, WriteConflict fails the command (labelled transient) instead.
  return !(ctx.inTransaction && error.code === ErrorCode.WriteConflict);
}

function writeErrorDoc(index: number, error: ServerError): Document {
  return { index, code: error.code, errmsg: error.message, ...error.extra };
}

function ensureIdUnchanged(id: string, next: Document): void {
  if (valueKey(next._id) !== id) {
    throw new ServerError(
      ErrorCode.ImmutableField,
      "Performing an update on the path '_id' would modify the immutable field '_id'",
    );
  }
}

// ---------------------------------------------------------------------------------------------
// CRUD

/**
 * Runs each statement of a write command (`documents`, `updates`, `deletes`). A statement's
 * failure becomes a `writeErrors` entry; an ordered command stops at the first one, an
 * unordered one goes on (mongod's write command semantics).
 */
function eachStatement(
  ctx: CommandContext,
  field: string,
  run: (statement: Document, index: number) => void,
): Document[] {
  const ordered = ctx.command.ordered !== false;
  const writeErrors: Document[] = [];
  for (const [index, statement] of requireArray(ctx.command, field).entries()) {
    try {
      run(statement, index);
    } catch (error) {
      if (!isWriteError(error, ctx)) throw error;
      writeErrors.push(writeErrorDoc(index, error));
      if (ordered) break;
    }
  }
  return writeErrors;
}

function withWriteErrors(reply: Document, writeErrors: Document[]): Document {
  return writeErrors.length > 0 ? { ...reply, writeErrors } : reply;
}

const insert: Handler = (ctx) => {
  const collection = ctx.unit.ensureCollection(ctx.db, collectionName(ctx, 'insert'));
  let n = 0;
  const writeErrors = eachStatement(ctx, 'documents', (raw) => {
    const doc = withId(raw);
    validateForInsert(doc);
    ctx.unit.insert(collection, doc);
    n += 1;
  });
  return withWriteErrors({ n }, writeErrors);
};

interface UpdateResult {
  matched: number;
  modified: number;
  upsertedId?: unknown;
  /** The matched document before and after (single-document updates). */
  before?: Document;
  after?: Document;
}

/**
 * One update statement: `q`, `u`, `upsert`, `multi`, `arrayFilters` (also used by
 * findAndModify with `multi: false` and the candidate chosen by `sort`).
 */
function updateStatement(
  ctx: CommandContext,
  collection: Collection,
  statement: {
    q: Document;
    u: Document | Document[];
    upsert: boolean;
    multi: boolean;
    arrayFilters?: Document[];
    sort?: Document;
    /** The statement's constants `c` (pipeline updates only). */
    constants?: Document;
  },
): UpdateResult {
  const { q, u, upsert, multi } = statement;
  const options = {
    filter: q,
    ...(statement.arrayFilters === undefined ? {} : { arrayFilters: statement.arrayFilters }),
    ...(statement.constants === undefined ? {} : { variables: statement.constants }),
  };
  const isReplacement =
    !Array.isArray(u) &&
    Object.keys(u).every((key) => !key.startsWith('$')) &&
    Object.keys(u).length > 0;
  if (multi && isReplacement) {
    throw new ServerError(
      ErrorCode.FailedToParse,
      'multi update is not supported for replacement-style update',
    );
  }
  let targets = sorted(matching(ctx, collection, q), statement.sort);
  if (!multi) targets = targets.slice(0, 1);
  const result: UpdateResult = { matched: 0, modified: 0 };
  for (const [id, doc] of targets) {
    result.matched += 1;
    const { doc: next, changed } = applyUpdate(doc, u, options);
    result.before = doc;
    result.after = next;
    if (!changed) continue;
    ensureIdUnchanged(id, next);
    validateForUpdate(next);
    ctx.unit.write(collection, id, doc, next);
    result.modified += 1;
  }
  if (result.matched === 0 && upsert) {
    const seed = upsertSeedDocument(q);
    const { doc } = applyUpdate(seed, u, { ...options, isUpsertInsert: true });
    if (Object.hasOwn(seed, '_id') && valueKey(seed._id) !== valueKey(doc._id))
      ensureIdUnchanged(valueKey(seed._id), doc);
    const inserted = withId(doc);
    validateForUpdate(inserted);
    ctx.unit.insert(collection, inserted);
    result.upsertedId = inserted._id;
    result.after = inserted;
  }
  return result;
}

function parseUpdateStatement(raw: Document): {
  q: Document;
  u: Document | Document[];
  upsert: boolean;
  multi: boolean;
  arrayFilters?: Document[];
  constants?: Document;
} {
  const q = optionalDocument(raw, 'q') ?? {};
  const u = raw.u as unknown;
  if (u === null || typeof u !== 'object') {
    throw new ServerError(
      ErrorCode.FailedToParse,
      "BSON field 'update.updates.u' is missing or is not an object or array",
    );
  }
  const arrayFilters = raw.arrayFilters as Document[] | undefined;
  const constants = resolveConstants(raw.c);
  if (constants !== undefined && !Array.isArray(u)) {
    // mongod: UpdateDriver::parse (src/mongo/db/update/update_driver.cpp).
    throw new ServerError(51198, 'Constant values may only be specified for pipeline updates');
  }
  return {
    q,
    u: u as Document | Document[],
    upsert: raw.upsert === true,
    multi: raw.multi === true,
    ...(arrayFilters === undefined ? {} : { arrayFilters }),
    ...(constants === undefined ? {} : { constants }),
  };
}

const update: Handler = (ctx) => {
  const collection = ctx.unit.ensureCollection(ctx.db, collectionName(ctx, 'update'));
  const upserted: Document[] = [];
  let n = 0;
  let nModified = 0;
  const writeErrors = eachStatement(ctx, 'updates', (raw, index) => {
    const result = updateStatement(ctx, collection, parseUpdateStatement(raw));
    n += result.matched;
    nModified += result.modified;
    if (result.upsertedId !== undefined) {
      n += 1;
      upserted.push({ index, _id: result.upsertedId });
    }
  });
  return withWriteErrors(
    upserted.length > 0 ? { n, nModified, upserted } : { n, nModified },
    writeErrors,
  );
};

const remove: Handler = (ctx) => {
  const collection = ctx.unit.collection(ctx.db, collectionName(ctx, 'delete'));
  let n = 0;
  const writeErrors = eachStatement(ctx, 'deletes', (raw) => {
    const q = optionalDocument(raw, 'q') ?? {};
    const limit = raw.limit;
    if (limit !== 0 && limit !== 1) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        `The limit field in delete objects must be 0 or 1. Got ${String(limit)}`,
      );
    }
    let targets = matching(ctx, collection, q);
    if (limit === 1) targets = targets.slice(0, 1);
    for (const [id, doc] of targets) {
      ctx.unit.write(collection!, id, doc, null);
      n += 1;
    }
  });
  return withWriteErrors({ n }, writeErrors);
};

/**
 * The answer mongod gives when a retryable findAndModify is retried (same lsid and txnNumber):
 * it does not run the command again but rebuilds the reply from the stored image of the first
 * execution, and does NOT apply `fields` (SERVER-44151). Source: mongod
 * src/mongo/db/ops/write_ops_retryability.cpp, parseOplogEntryForFindAndModify: an update
 * answers `lastErrorObject: { n: 1, updatedExisting: true }` and the pre- or post-image as
 * stored; an upsert that inserted answers `{ n: 1, updatedExisting: false, upserted: _id }` and
 * the inserted document only for `new: true` (else `value: null`); a remove answers `{ n: 1 }`
 * and the deleted document. find_and_modify.cpp adds `retriedStmtId`. Attached to the reply of
 * the first execution as a non-enumerable property, so it is never sent with that reply; the
 * dispatcher records it for the replay (server.ts).
 */
export const RETRY_REPLY: unique symbol = Symbol('findAndModify retry reply');

function withRetryReply(
  reply: Document,
  retry: { readonly lastErrorObject: Document; readonly value: unknown },
): Document {
  // Field by field: a spread followed by one more field costs about a microsecond (V8 takes
  // its slow path for the copy), a large part of a findAndModify's own time.
  const retried = { lastErrorObject: retry.lastErrorObject, value: retry.value, retriedStmtId: 0 };
  Object.defineProperty(reply, RETRY_REPLY, { value: retried });
  return reply;
}

const findAndModify: Handler = (ctx) => {
  const name = typeof ctx.command.findAndModify === 'string' ? 'findAndModify' : 'findandmodify';
  const collection = ctx.unit.ensureCollection(ctx.db, collectionName(ctx, name));
  const query = optionalDocument(ctx.command, 'query') ?? {};
  const sort = optionalDocument(ctx.command, 'sort');
  const fields = optionalDocument(ctx.command, 'fields');
  const returnNew = ctx.command.new === true;
  const project = (doc: Document | null | undefined): Document | null =>
    doc === null || doc === undefined
      ? null
      : fields === undefined
        ? doc
        : applyProjection(doc, fields);

  if (ctx.command.remove === true) {
    if (ctx.command.update !== undefined) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        'Cannot specify both an update and remove=true',
      );
    }
    if (returnNew)
      throw new ServerError(
        ErrorCode.FailedToParse,
        "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document",
      );
    const target = sorted(matching(ctx, collection, query), sort)[0];
    if (target === undefined) return { lastErrorObject: { n: 0 }, value: null };
    ctx.unit.write(collection, target[0], target[1], null);
    return withRetryReply(
      { lastErrorObject: { n: 1 }, value: project(target[1]) },
      { lastErrorObject: { n: 1 }, value: target[1] },
    );
  }
  const u = ctx.command.update as unknown;
  if (u === null || typeof u !== 'object') {
    throw new ServerError(
      ErrorCode.FailedToParse,
      'Either an update or remove=true must be specified',
    );
  }
  const arrayFilters = ctx.command.arrayFilters as Document[] | undefined;
  const result = updateStatement(ctx, collection, {
    q: query,
    u: u as Document | Document[],
    upsert: ctx.command.upsert === true,
    multi: false,
    ...(arrayFilters === undefined ? {} : { arrayFilters }),
    ...(sort === undefined ? {} : { sort }),
  });
  const lastErrorObject: Document = {
    n: result.matched > 0 || result.upsertedId !== undefined ? 1 : 0,
    updatedExisting: result.matched > 0,
  };
  if (result.upsertedId !== undefined) lastErrorObject.upserted = result.upsertedId;
  const image = returnNew
    ? result.after
    : result.upsertedId !== undefined
      ? undefined
      : result.before;
  const reply = { lastErrorObject, value: project(image) };
  if (lastErrorObject.n === 0) return reply;
  return withRetryReply(reply, {
    lastErrorObject:
      result.upsertedId === undefined
        ? { n: 1, updatedExisting: true }
        : { n: 1, updatedExisting: false, upserted: result.upsertedId },
    value: image ?? null,
  });
};

const find: Handler = (ctx) => {
  const name = collectionName(ctx, 'find');
  const collection = ctx.unit.collection(ctx.db, name);
  const filter = optionalDocument(ctx.command, 'filter') ?? {};
  const sort = optionalDocument(ctx.command, 'sort');
  const projection = optionalDocument(ctx.command, 'projection');
  const skip = optionalNumber(ctx.command, 'skip') ?? 0;
  const limit = optionalNumber(ctx.command, 'limit');
  const batchSize = optionalNumber(ctx.command, 'batchSize');
  if (skip < 0) throw new ServerError(ErrorCode.BadValue, 'skip value must be non-negative');
  if (limit !== undefined && limit < 0)
    throw new ServerError(ErrorCode.BadValue, 'limit value must be non-negative');
  if (batchSize !== undefined && batchSize < 0)
    throw new ServerError(ErrorCode.BadValue, 'batchSize value must be non-negative');
  let docs = sorted(matching(ctx, collection, filter), sort).map(([, doc]) => doc);
  if (skip > 0) docs = docs.slice(skip);
  if (projection !== undefined) {
    const project = projector(projection);
    docs = docs.map((doc) => project(doc));
  }
  const cursor = ctx.cursors.open(`${ctx.db}.${name}`, docs, {
    batchSize,
    limit,
    singleBatch: ctx.command.singleBatch === true,
    atClusterTime: ctx.atClusterTime,
  });
  return { cursor };
};

const getMore: Handler = (ctx) => {
  const name = collectionName(ctx, 'collection');
  return {
    cursor: ctx.cursors.getMore(
      ctx.command.getMore,
      `${ctx.db}.${name}`,
      optionalNumber(ctx.command, 'batchSize'),
    ),
  };
};

const killCursors: Handler = (ctx) => {
  collectionName(ctx, 'killCursors');
  return ctx.cursors.kill(requireArray(ctx.command, 'cursors'));
};

const aggregate: Handler = (ctx) => {
  const target = ctx.command.aggregate;
  const pipeline = requireArray(ctx.command, 'pipeline');
  const cursorOptions = optionalDocument(ctx.command, 'cursor');
  if (cursorOptions === undefined && ctx.command.explain !== true) {
    throw new ServerError(
      ErrorCode.FailedToParse,
      "The 'cursor' option is required, except for aggregate with the explain argument",
    );
  }
  let source: Document[] = [];
  let ns = `${ctx.db}.$cmd.aggregate`;
  if (typeof target === 'string') {
    const collection = ctx.unit.collection(ctx.db, target);
    if (collection !== undefined) source = [...ctx.unit.scan(collection)].map(([, doc]) => doc);
    ns = `${ctx.db}.${target}`;
  } else if (target !== 1) {
    throw new ServerError(ErrorCode.FailedToParse, "BSON field 'aggregate' must be a string or 1");
  }
  const docs = runPipeline(source, pipeline);
  const batchSize =
    cursorOptions === undefined ? undefined : optionalNumber(cursorOptions, 'batchSize');
  return { cursor: ctx.cursors.open(ns, docs, { batchSize, atClusterTime: ctx.atClusterTime }) };
};

const count: Handler = (ctx) => {
  const collection = ctx.unit.collection(ctx.db, collectionName(ctx, 'count'));
  const query = optionalDocument(ctx.command, 'query') ?? {};
  const skip = optionalNumber(ctx.command, 'skip') ?? 0;
  const limit = optionalNumber(ctx.command, 'limit') ?? 0;
  let n = Math.max(0, matching(ctx, collection, query).length - skip);
  if (limit !== 0) n = Math.min(n, Math.abs(limit));
  return { n };
};

const distinct: Handler = (ctx) => {
  const collection = ctx.unit.collection(ctx.db, collectionName(ctx, 'distinct'));
  const key = ctx.command.key;
  if (typeof key !== 'string')
    throw new ServerError(
      ErrorCode.TypeMismatch,
      "BSON field 'distinct.key' is missing or is not a string",
    );
  const query = optionalDocument(ctx.command, 'query') ?? {};
  const seen = new Map<string, unknown>();
  const add = (value: unknown): void => {
    if (value === undefined) return;
    const k = valueKey(value);
    if (!seen.has(k)) seen.set(k, value);
  };
  for (const [, doc] of matching(ctx, collection, query)) {
    const value = getPath(doc, key);
    // distinct treats each element of an array field as a separate value.
    if (Array.isArray(value)) for (const element of value) add(element);
    else add(value);
  }
  const values = [...seen.values()];
  return ctx.atClusterTime === undefined
    ? { values }
    : { values, atClusterTime: ctx.atClusterTime };
};

// ---------------------------------------------------------------------------------------------
// Collections and indexes

function collectionInfo(collection: Collection): Document {
  return {
    name: collection.name,
    type: 'collection',
    options: {},
    info: { readOnly: false, uuid: collection.uuid },
    idIndex: { v: 2, key: { _id: 1 }, name: '_id_' },
  };
}

/** Command fields that are not collection options. */
const GENERIC_FIELDS = new Set([
  'create',
  '$db',
  'lsid',
  'txnNumber',
  'autocommit',
  'startTransaction',
  'writeConcern',
  'readConcern',
  'comment',
  'maxTimeMS',
  '$readPreference',
  '$clusterTime',
  'apiVersion',
  'apiStrict',
  'apiDeprecationErrors',
]);

/**
 * Creating a collection or an index explicitly inside a transaction needs read concern "local"
 * (manual, reference/read-concern-local, "Read Concern local and Transactions";
 * jstests/core/txns/commands_in_txns_read_concern.js: InvalidOptions). Implicit creation by a
 * write is allowed under any read concern.
 */
function requireLocalReadConcern(ctx: CommandContext, command: string): void {
  const level = ctx.unit.txn?.readConcernLevel;
  if (level === undefined || level === 'local') return;
  throw new ServerError(
    ErrorCode.InvalidOptions,
    `Cannot run '${command}' in a multi-document transaction with read concern level '${level}': creating collections and indexes in a transaction requires read concern level 'local'`,
  );
}

const create: Handler = (ctx) => {
  const name = collectionName(ctx, 'create');
  const options = Object.keys(ctx.command).filter(
    (field) =>
      !GENERIC_FIELDS.has(field) &&
      // The simple collation is the binary comparison every collection here uses.
      !(field === 'collation' && isSimpleCollation(ctx.command.collation)),
  );
  requireLocalReadConcern(ctx, 'create');
  if (ctx.unit.collection(ctx.db, name) !== undefined) {
    // Since SERVER-60064 (MongoDB 7.0) creating an existing collection with identical options
    // succeeds; different options answer NamespaceExists. Collections here have no options.
    // Inside a transaction an existing collection is always NamespaceExists
    // (jstests/core/txns/create_collection_parallel.js).
    if (ctx.inTransaction) {
      throw new ServerError(
        ErrorCode.NamespaceExists,
        `Collection already exists. NS: ${ctx.db}.${name}`,
      );
    }
    if (options.length === 0) return {};
    throw new ServerError(
      ErrorCode.NamespaceExists,
      `Collection ${ctx.db}.${name} already exists with different options`,
    );
  }
  if (options.length > 0) {
    // Capped collections, validators, views, time series…: not imitated, so refused loudly.
    throw new ServerError(
      ErrorCode.InvalidOptions,
      `the offline test server does not implement collection option(s): ${options.join(', ')}`,
    );
  }
  ctx.unit.ensureCollection(ctx.db, name);
  return {};
};

const drop: Handler = (ctx) => {
  const name = collectionName(ctx, 'drop');
  const collection = ctx.storage.collection(ctx.db, name);
  // Since MongoDB 7.0, dropping a collection that does not exist succeeds.
  if (collection === undefined) return {};
  const nIndexesWas = collection.indexes.length;
  ctx.storage.dropCollection(ctx.db, name);
  return { nIndexesWas, ns: collection.ns };
};

const dropDatabase: Handler = (ctx) => {
  ctx.storage.dropDatabase(ctx.db);
  return { dropped: ctx.db };
};

const listCollections: Handler = (ctx) => {
  const filter = optionalDocument(ctx.command, 'filter') ?? {};
  const matches = compileFilter(filter);
  const nameOnly = ctx.command.nameOnly === true;
  const collections = [...(ctx.storage.databases.get(ctx.db)?.values() ?? [])];
  const docs = collections
    .map(collectionInfo)
    .filter(matches)
    .map((doc) => (nameOnly ? { name: doc.name, type: doc.type } : doc));
  const cursorOptions = optionalDocument(ctx.command, 'cursor');
  const batchSize =
    cursorOptions === undefined ? undefined : optionalNumber(cursorOptions, 'batchSize');
  return { cursor: ctx.cursors.open(`${ctx.db}.$cmd.listCollections`, docs, { batchSize }) };
};

const listDatabases: Handler = (ctx) => {
  const matches = compileFilter(optionalDocument(ctx.command, 'filter') ?? {});
  const databases = [...ctx.storage.databases.keys()]
    .map((name) => ({ name, sizeOnDisk: 0, empty: false }))
    .filter(matches);
  const nameOnly = ctx.command.nameOnly === true;
  return {
    databases: nameOnly ? databases.map(({ name }) => ({ name })) : databases,
    totalSize: 0,
    totalSizeMb: 0,
  };
};

function defaultIndexName(key: Document): string {
  return Object.entries(key)
    .map(([field, direction]) => `${field}_${String(direction)}`)
    .join('_');
}

const INDEX_OPTIONS = [
  'unique',
  'sparse',
  'partialFilterExpression',
  'expireAfterSeconds',
] as const;

function sameIndexOptions(a: IndexSpec, b: IndexSpec): boolean {
  return INDEX_OPTIONS.every(
    (option) => valueKey(a[option] ?? null) === valueKey(b[option] ?? null),
  );
}

function parseIndexSpec(raw: Document): IndexSpec {
  const key = raw.key;
  if (
    key === null ||
    typeof key !== 'object' ||
    Array.isArray(key) ||
    Object.keys(key).length === 0
  ) {
    throw new ServerError(ErrorCode.CannotCreateIndex, 'Index keys cannot be an empty field');
  }
  for (const [field, direction] of Object.entries(key as Document)) {
    if (direction !== 1 && direction !== -1 && typeof direction !== 'string') {
      throw new ServerError(
        ErrorCode.CannotCreateIndex,
        `Values in the index key pattern must be 1, -1 or a string; got ${String(direction)} for ${field}`,
      );
    }
  }
  const name = typeof raw.name === 'string' ? raw.name : defaultIndexName(key as Document);
  const spec: { -readonly [K in keyof IndexSpec]: IndexSpec[K] } = {
    v: 2,
    key: key as Document,
    name,
  };
  if (raw.unique === true) spec.unique = true;
  if (raw.sparse === true) spec.sparse = true;
  if (raw.partialFilterExpression !== undefined) {
    const partial = raw.partialFilterExpression;
    if (partial === null || typeof partial !== 'object' || Array.isArray(partial)) {
      throw new ServerError(ErrorCode.TypeMismatch, 'partialFilterExpression must be an object');
    }
    compileFilter(partial as Document);
    spec.partialFilterExpression = partial as Document;
  }
  if (raw.expireAfterSeconds !== undefined) {
    if (typeof raw.expireAfterSeconds !== 'number' || raw.expireAfterSeconds < 0) {
      throw new ServerError(
        ErrorCode.CannotCreateIndex,
        "TTL index 'expireAfterSeconds' option must be a non-negative number",
      );
    }
    spec.expireAfterSeconds = raw.expireAfterSeconds;
  }
  return spec;
}

const createIndexes: Handler = (ctx) => {
  const name = collectionName(ctx, 'createIndexes');
  requireLocalReadConcern(ctx, 'createIndexes');
  const specs = requireArray(ctx.command, 'indexes').map(parseIndexSpec);
  const existed = ctx.unit.collection(ctx.db, name) !== undefined;
  const collection = ctx.unit.ensureCollection(ctx.db, name);
  const numIndexesBefore = collection.indexes.length;
  const toAdd: IndexSpec[] = [];
  for (const spec of specs) {
    const sameName = collection.indexes.find((index) => index.name === spec.name);
    const sameKey = collection.indexes.find((index) => valueKey(index.key) === valueKey(spec.key));
    if (sameName !== undefined) {
      if (valueKey(sameName.key) !== valueKey(spec.key)) {
        throw new ServerError(
          ErrorCode.IndexKeySpecsConflict,
          `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(sameName)}`,
        );
      }
      if (!sameIndexOptions(sameName, spec)) {
        throw new ServerError(
          ErrorCode.IndexOptionsConflict,
          `An equivalent index already exists with the same name but different options. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(sameName)}`,
        );
      }
      continue;
    }
    if (sameKey !== undefined && sameIndexOptions(sameKey, spec)) {
      throw new ServerError(
        ErrorCode.IndexOptionsConflict,
        `Index already exists with a different name: ${sameKey.name}`,
      );
    }
    toAdd.push(spec);
  }
  if (ctx.inTransaction && toAdd.length > 0) checkIndexBuildInTransaction(ctx, collection);
  for (const spec of toAdd) {
    if (spec.unique === true) checkUniqueBuild(ctx, collection, spec);
  }
  collection.indexes = [...collection.indexes, ...toAdd];
  const reply: Document = {
    numIndexesBefore,
    numIndexesAfter: collection.indexes.length,
    // mongod builds an index in a transaction as on a new collection and says so, even for a
    // collection an earlier statement created (create_indexes.cpp, runCreateIndexesOnNewCollection).
    createdCollectionAutomatically: !existed || ctx.unit.createdInTransaction(collection),
  };
  if (toAdd.length === 0) reply.note = 'all indexes already exist';
  return reply;
};

/**
 * Inside a transaction an index can only be built on a collection the transaction created and
 * has not written to yet (manual, core/transactions-operations, "Create Collections and Indexes
 * in a Transaction"; mongod src/mongo/db/commands/create_indexes_cmd.cpp).
 */
function checkIndexBuildInTransaction(ctx: CommandContext, collection: Collection): void {
  if (!ctx.unit.createdInTransaction(collection)) {
    throw new ServerError(
      ErrorCode.OperationNotSupportedInTransaction,
      `Cannot create new indexes on existing collection ${collection.ns} in a multi-document transaction.`,
    );
  }
  if (!ctx.unit.scan(collection).next().done) {
    throw new ServerError(
      ErrorCode.OperationNotSupportedInTransaction,
      `Cannot create new indexes on non-empty collection ${collection.ns} in a multi-document transaction.`,
    );
  }
}

/** A unique index cannot be built over documents that already violate it. */
function checkUniqueBuild(ctx: CommandContext, collection: Collection, spec: IndexSpec): void {
  const seen = new Set<string>();
  for (const [, doc] of ctx.unit.scan(collection)) {
    // A partial or sparse index holds no entry for the documents it leaves out.
    if (!indexApplies(spec, doc)) continue;
    const keys = new Set(indexKeys(doc, spec.key));
    for (const key of keys) {
      if (seen.has(key)) {
        const error = duplicateKey(collection, spec, doc);
        throw new ServerError(
          ErrorCode.DuplicateKey,
          `Index build failed: ${collection.uuid.toHexString()}: Collection ${collection.ns} ( ${collection.uuid.toHexString()} ) :: caused by :: ${error.message}`,
          error.extra,
        );
      }
    }
    for (const key of keys) seen.add(key);
  }
}

const listIndexes: Handler = (ctx) => {
  const name = collectionName(ctx, 'listIndexes');
  const collection = ctx.storage.collection(ctx.db, name);
  if (collection === undefined) {
    throw new ServerError(ErrorCode.NamespaceNotFound, `ns does not exist: ${ctx.db}.${name}`);
  }
  const cursorOptions = optionalDocument(ctx.command, 'cursor');
  const batchSize =
    cursorOptions === undefined ? undefined : optionalNumber(cursorOptions, 'batchSize');
  return {
    cursor: ctx.cursors.open(
      `${ctx.db}.$cmd.listIndexes.${name}`,
      collection.indexes.map((index) => ({ ...index })),
      { batchSize },
    ),
  };
};

const dropIndexes: Handler = (ctx) => {
  const name = collectionName(ctx, 'dropIndexes');
  const collection = ctx.storage.collection(ctx.db, name);
  if (collection === undefined) {
    throw new ServerError(ErrorCode.NamespaceNotFound, `ns not found ${ctx.db}.${name}`);
  }
  const nIndexesWas = collection.indexes.length;
  const target = ctx.command.index;
  const names: string[] = [];
  if (target === '*') {
    names.push(
      ...collection.indexes.filter((index) => index.name !== '_id_').map((index) => index.name),
    );
  } else if (typeof target === 'string') {
    names.push(target);
  } else if (Array.isArray(target)) {
    names.push(...(target as string[]));
  } else if (target !== null && typeof target === 'object') {
    const byKey = collection.indexes.find((index) => valueKey(index.key) === valueKey(target));
    if (byKey === undefined) {
      throw new ServerError(
        ErrorCode.IndexNotFound,
        `can't find index with key: ${JSON.stringify(target)}`,
      );
    }
    names.push(byKey.name);
  }
  for (const indexName of names) {
    if (indexName === '_id_')
      throw new ServerError(ErrorCode.InvalidOptions, 'cannot drop _id index');
    if (!collection.indexes.some((index) => index.name === indexName)) {
      throw new ServerError(ErrorCode.IndexNotFound, `index not found with name [${indexName}]`);
    }
  }
  collection.indexes = collection.indexes.filter((index) => !names.includes(index.name));
  return { nIndexesWas };
};

/**
 * A command that takes `let` (manual, the `let` field of find, aggregate, update, delete and
 * findAndModify, 5.0+): its variables are evaluated once, before the handler reads a document,
 * and every `$$name` the handler evaluates resolves to them.
 */
function withLet(handler: Handler): Handler {
  return (ctx) => withCommandVariables(resolveLet(ctx.command), () => handler(ctx));
}

export const HANDLERS: Readonly<Record<string, Handler>> = checkingOptions({
  insert,
  update: withLet(update),
  delete: withLet(remove),
  findAndModify: withLet(findAndModify),
  findandmodify: withLet(findAndModify),
  find: withLet(find),
  getMore,
  killCursors,
  aggregate: withLet(aggregate),
  count,
  distinct,
  create,
  drop,
  dropDatabase,
  listCollections,
  listDatabases,
  createIndexes,
  listIndexes,
  dropIndexes,
});

/** Removes documents whose TTL index field is older than `expireAfterSeconds` (mongod's TTL monitor). */
export function expireTtlDocuments(storage: Storage, unit: WriteUnit, now: Date): number {
  let removed = 0;
  for (const collections of storage.databases.values()) {
    for (const collection of collections.values()) {
      for (const index of collection.indexes) {
        if (index.expireAfterSeconds === undefined) continue;
        const [field] = Object.keys(index.key);
        if (field === undefined || Object.keys(index.key).length !== 1) continue;
        const cutoff = now.getTime() - index.expireAfterSeconds * 1000;
        for (const [id, doc] of unit.scan(collection)) {
          const value = getPath(doc, field);
          const dates = (Array.isArray(value) ? value : [value]).filter(
            (v): v is Date => v instanceof Date,
          );
          if (dates.length === 0 || Math.min(...dates.map((d) => d.getTime())) > cutoff) continue;
          if (
            index.partialFilterExpression !== undefined &&
            !matchesPartialFilter(doc, index.partialFilterExpression)
          )
            continue;
          unit.write(collection, id, doc, null);
          removed += 1;
        }
      }
    }
  }
  return removed;
}
