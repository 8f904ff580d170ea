/**
 * The fields each implemented command accepts, and what happens to each: honoured by the
 * handler, or refused by name because the offline server does not implement it. Nothing a
 * command carries is ignored in silence: a documented option the server cannot imitate answers
 * NotImplemented (238) naming it (mongod has no such refusal; this is the server saying where it
 * stops), and a field MongoDB 7.0 does not know at all answers what mongod's IDL parser answers,
 * code 40415 "BSON field '<command>.<field>' is an unknown field." Index specifications are not
 * IDL-parsed by mongod: an unknown field there is InvalidIndexSpecificationOption (197),
 * src/mongo/db/catalog/index_key_validate.cpp.
 *
 * Field lists: the MongoDB 7.0 manual's page for each command (reference/command/<name>), and
 * the generic arguments every command takes (src/mongo/idl/generic_argument.idl).
 *
 * Left to the handlers or to other parts of the server: `let` and the update statement's `c`
 * (variables), `readConcern` (read concern levels), the update statement's `sort` (an 8.0
 * field), and the collection options of `create` (its handler refuses them, after checking
 * whether the collection exists, as mongod orders those answers).
 */
import type { Document } from 'bson';
import { ErrorCode, ServerError } from './errors.js';
import { isPlainObject } from './values.js';

/**
 * What a field's value is checked against: `true` when the handler honours every value (or the
 * value has no effect on a single-node replica set holding no validators, as in mongod); a
 * function returning why a value is refused, or undefined when it is one the server honours.
 */
type Verdict = true | ((value: unknown) => string | undefined);

/** A sub-document or an array of sub-documents whose own fields are checked. */
interface Nested {
  readonly nested: 'document' | 'array';
  /** Code and wording for a field the sub-document does not know. */
  readonly unknown: 'idl' | 'indexSpec';
  readonly fields: Readonly<Record<string, Verdict | Nested>>;
}

type Rule = Verdict | Nested;
type Table = Readonly<Record<string, Rule>>;

const HONOURED = true;

/** Refused whatever its value. */
const notImplemented: Verdict = () => '';

/** Refused unless it has the value that means "off" (mongod's default). */
function unless(expected: unknown): Verdict {
  return (value) => (value === expected ? undefined : '');
}

/**
 * The simple collation (`{ locale: 'simple' }`) is the binary comparison the server implements;
 * any other collation changes how strings compare, which the server does not imitate.
 */
export function isSimpleCollation(value: unknown): boolean {
  return (
    isPlainObject(value) &&
    Object.keys(value).length === 1 &&
    Object.hasOwn(value, 'locale') &&
    value.locale === 'simple'
  );
}

const collation: Verdict = (value) =>
  isSimpleCollation(value)
    ? undefined
    : ' (only the simple collation, { locale: "simple" }, is implemented: strings compare binary)';

/** Index hints: the server scans every collection, so a hint could not change what it reads. */
const hint: Verdict = () =>
  ' (the server uses no indexes to answer queries, so it cannot honour or check a hint)';

/** Arguments every command accepts (generic_argument.idl), whatever the command. */
const GENERIC: Table = {
  $db: HONOURED,
  lsid: HONOURED,
  txnNumber: HONOURED,
  autocommit: HONOURED,
  startTransaction: HONOURED,
  stmtId: HONOURED,
  // Read concern levels and afterClusterTime are handled by the dispatcher.
  readConcern: HONOURED,
  // One node: every acknowledged write is majority-committed and journaled.
  writeConcern: HONOURED,
  maxTimeMS: HONOURED,
  comment: HONOURED,
  $readPreference: HONOURED,
  $clusterTime: HONOURED,
  apiVersion: HONOURED,
  apiStrict: HONOURED,
  apiDeprecationErrors: HONOURED,
};

const CURSOR: Nested = { nested: 'document', unknown: 'idl', fields: { batchSize: HONOURED } };

const COMMANDS: Readonly<Record<string, Table>> = {
  // reference/command/insert
  insert: {
    documents: HONOURED,
    ordered: HONOURED,
    // No collection has a validator here (create refuses them), so there is nothing to bypass.
    bypassDocumentValidation: HONOURED,
  },
  // reference/command/update
  update: {
    updates: {
      nested: 'array',
      unknown: 'idl',
      fields: {
        q: HONOURED,
        u: HONOURED,
        upsert: HONOURED,
        multi: HONOURED,
        arrayFilters: HONOURED,
        collation,
        hint,
        c: HONOURED,
        // MongoDB 8.0 added `sort` to update statements; 7.0's IDL (write_ops.idl
        // UpdateOpEntry, strict) does not know it: 40415 like any unknown field.
        upsertSupplied: notImplemented,
        sampleId: notImplemented,
        $_allowShardKeyUpdatesWithoutFullShardKeyInQuery: notImplemented,
      },
    },
    ordered: HONOURED,
    bypassDocumentValidation: HONOURED,
    let: HONOURED,
  },
  // reference/command/delete
  delete: {
    deletes: {
      nested: 'array',
      unknown: 'idl',
      fields: { q: HONOURED, limit: HONOURED, collation, hint, sampleId: notImplemented },
    },
    ordered: HONOURED,
    let: HONOURED,
  },
  // reference/command/findAndModify
  findAndModify: {
    query: HONOURED,
    sort: HONOURED,
    remove: HONOURED,
    update: HONOURED,
    new: HONOURED,
    fields: HONOURED,
    upsert: HONOURED,
    arrayFilters: HONOURED,
    bypassDocumentValidation: HONOURED,
    collation,
    hint,
    let: HONOURED,
  },
  // reference/command/find
  find: {
    filter: HONOURED,
    sort: HONOURED,
    projection: HONOURED,
    skip: HONOURED,
    limit: HONOURED,
    batchSize: HONOURED,
    singleBatch: HONOURED,
    let: HONOURED,
    // Nothing here spills to disk or times cursors out, and there are no shards; mongod has
    // ignored oplogReplay since 4.4: none of these changes an answer.
    allowDiskUse: HONOURED,
    noCursorTimeout: HONOURED,
    allowPartialResults: HONOURED,
    oplogReplay: HONOURED,
    collation,
    hint,
    max: notImplemented,
    min: notImplemented,
    returnKey: unless(false),
    showRecordId: unless(false),
    tailable: unless(false),
    awaitData: unless(false),
  },
  // reference/command/getMore
  getMore: { collection: HONOURED, batchSize: HONOURED },
  // reference/command/killCursors
  killCursors: { cursors: HONOURED },
  // reference/command/aggregate
  aggregate: {
    pipeline: HONOURED,
    cursor: CURSOR,
    allowDiskUse: HONOURED,
    bypassDocumentValidation: HONOURED,
    let: HONOURED,
    explain: unless(false),
    collation,
    hint,
  },
  // reference/command/count
  count: {
    query: HONOURED,
    limit: HONOURED,
    skip: HONOURED,
    collation,
    hint,
  },
  // reference/command/distinct
  distinct: { key: HONOURED, query: HONOURED, collation, hint },
  // reference/command/createIndexes
  createIndexes: {
    indexes: {
      nested: 'array',
      unknown: 'indexSpec',
      fields: {
        key: (value) =>
          isPlainObject(value) && Object.values(value).some((d) => typeof d === 'string')
            ? ' (only ascending and descending keys are implemented: no text, hashed, 2d, 2dsphere or wildcard indexes)'
            : undefined,
        name: HONOURED,
        unique: HONOURED,
        sparse: HONOURED,
        partialFilterExpression: HONOURED,
        expireAfterSeconds: HONOURED,
        v: unless(2),
        // Ignored by mongod since 4.2 (every build is a hybrid build).
        background: HONOURED,
        hidden: unless(false),
        collation,
        storageEngine: notImplemented,
        weights: notImplemented,
        default_language: notImplemented,
        language_override: notImplemented,
        textIndexVersion: notImplemented,
        '2dsphereIndexVersion': notImplemented,
        bits: notImplemented,
        min: notImplemented,
        max: notImplemented,
        wildcardProjection: notImplemented,
        prepareUnique: unless(false),
        clustered: notImplemented,
      },
    },
    // One voting member: every commit quorum is reached by the primary alone.
    commitQuorum: HONOURED,
  },
  // reference/command/listIndexes
  listIndexes: { cursor: CURSOR },
  // reference/command/dropIndexes
  dropIndexes: { index: HONOURED },
  // reference/command/create: the handler refuses every collection option (see above).
  create: {
    capped: HONOURED,
    timeseries: HONOURED,
    expireAfterSeconds: HONOURED,
    clusteredIndex: HONOURED,
    changeStreamPreAndPostImages: HONOURED,
    autoIndexId: HONOURED,
    size: HONOURED,
    max: HONOURED,
    storageEngine: HONOURED,
    validator: HONOURED,
    validationLevel: HONOURED,
    validationAction: HONOURED,
    indexOptionDefaults: HONOURED,
    viewOn: HONOURED,
    pipeline: HONOURED,
    collation: HONOURED,
    encryptedFields: HONOURED,
  },
  // reference/command/drop, dropDatabase
  drop: {},
  dropDatabase: {},
  // reference/command/listCollections: without authentication every collection is authorized.
  listCollections: {
    filter: HONOURED,
    nameOnly: HONOURED,
    authorizedCollections: HONOURED,
    cursor: CURSOR,
  },
  // reference/command/listDatabases
  listDatabases: { filter: HONOURED, nameOnly: HONOURED, authorizedDatabases: HONOURED },
  // reference/command/commitTransaction, abortTransaction: recoveryToken is what drivers send
  // to mongos (sharded transactions), never to a replica set member, which this server is.
  commitTransaction: { recoveryToken: notImplemented },
  abortTransaction: { recoveryToken: notImplemented },
};

/** The lower-case spelling mongod also accepts. */
const ALIASES: Readonly<Record<string, string>> = { findandmodify: 'findAndModify' };

function refuse(path: string, reason: string): never {
  throw new ServerError(
    ErrorCode.NotImplemented,
    `the offline test server does not implement the option '${path}'${reason}; it refuses it rather than ignore it`,
  );
}

function unknownField(path: string, kind: Nested['unknown'], field: string): never {
  if (kind === 'indexSpec') {
    throw new ServerError(
      ErrorCode.InvalidIndexSpecificationOption,
      `The field '${field}' is not valid for an index specification.`,
    );
  }
  throw new ServerError(ErrorCode.Location40415, `BSON field '${path}' is an unknown field.`);
}

function checkFields(
  doc: Document,
  fields: Table,
  path: string,
  kind: Nested['unknown'],
  skip?: string,
): void {
  for (const field of Object.keys(doc)) {
    if (field === skip) continue;
    const here = `${path}.${field}`;
    const rule = Object.hasOwn(fields, field)
      ? fields[field]
      : kind === 'idl' && Object.hasOwn(GENERIC, field) && path.indexOf('.') === -1
        ? GENERIC[field]
        : undefined;
    if (rule === undefined) unknownField(here, kind, field);
    const value = doc[field] as unknown;
    if (rule === true) continue;
    if (typeof rule === 'function') {
      const reason = rule(value);
      if (reason !== undefined) refuse(here, reason);
      continue;
    }
    // A malformed sub-document is the handler's to answer (type errors, missing fields).
    const items = rule.nested === 'array' ? (Array.isArray(value) ? value : []) : [value];
    for (const item of items) {
      if (isPlainObject(item)) checkFields(item, rule.fields, here, rule.unknown);
    }
  }
}

/**
 * Checks every field of `command` (and of its statements, index specifications and cursor
 * options) against the table of `name`: returns when each is honoured, throws when one is not
 * implemented (NotImplemented, 238) or unknown to MongoDB 7.0 (40415, or 197 in an index
 * specification). A command without a table is not checked.
 */
export function checkCommandOptions(name: string, command: Document): void {
  const canonical = Object.hasOwn(ALIASES, name) ? (ALIASES[name] ?? name) : name;
  const table = Object.hasOwn(COMMANDS, canonical) ? COMMANDS[canonical] : undefined;
  if (table === undefined) return;
  const commandField = Object.keys(command)[0];
  checkFields(command, table, commandField ?? name, 'idl', commandField);
}

/** `handlers`, each checking its command's fields (checkCommandOptions) before it runs. */
export function checkingOptions<C extends { readonly command: Document }>(
  handlers: Readonly<Record<string, (ctx: C) => Document>>,
): Readonly<Record<string, (ctx: C) => Document>> {
  return Object.fromEntries(
    Object.entries(handlers).map(([name, handler]) => [
      name,
      (ctx: C) => {
        checkCommandOptions(name, ctx.command);
        return handler(ctx);
      },
    ]),
  );
}
