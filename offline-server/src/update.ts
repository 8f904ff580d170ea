/**
 * Update documents: operator updates, replacements and aggregation-pipeline updates, with the
 * errors mongod raises (mingo's updater skips most of them silently, so this is our own engine).
 *
 * An update is all-or-nothing: it is parsed and validated first, then applied to a deep copy;
 * any error discards the copy. The input document is never mutated. (A pipeline update none of
 * whose stages or expressions writes into its input reads the input itself instead, and its
 * result shares the parts it kept: see `leavesInputIntact`.)
 *
 * References: https://www.mongodb.com/docs/manual/reference/operator/update/ , mongod
 * `src/mongo/db/update/*.cpp` (update_object_node, update_array_node, arithmetic_node, push_node,
 * addtoset_node, pull_node, pop_node, rename_node, modifier_node, pipeline_executor,
 * update_driver).
 */
import { Decimal128, type Document, Long, Timestamp } from 'bson';
import { Aggregator } from 'mingo/aggregator';
import { OpType } from 'mingo/core';
import type { Options } from 'mingo/types';
import { ErrorCode, ServerError } from './errors.js';
import { BAIL, type Bail, tryEvaluate } from './expressions.js';
import {
  decodeValue,
  encodeCopy,
  encodePipeline,
  encodeVariables,
  hasMarkedNameBeside,
  isSpecialName,
  unchangingDocumentHasNoRenamedName,
} from './mingo-names.js';
import {
  asServerError,
  BSON_CONTEXT,
  compareBySort,
  compileFilter,
  equalityFieldsForUpsert,
  mingoOptions,
  pinNow,
} from './query.js';
import {
  addNumbers,
  bsonTypeName,
  cloneDocument,
  compareFieldNames,
  compareValues,
  formatElement,
  formatValue,
  getField,
  isArrayIndex,
  isNumeric,
  isPlainObject,
  multiplyNumbers,
  sameBytes,
  setField,
  splitPath,
  toDouble,
  toExactNumber,
  valuesEqual,
} from './values.js';

export interface UpdateOptions {
  readonly arrayFilters?: Document[];
  /** The query filter: resolves positional `$` (first array element it matched). */
  readonly filter?: Document;
  /** The update creates a new document (upsert): `$setOnInsert` applies, positional `$` fails. */
  readonly isUpsertInsert?: boolean;
  /** Constants of a pipeline update statement (`c`, 5.0+), over the command's `let` variables. */
  readonly variables?: Document;
}

export interface UpdateResult {
  readonly doc: Document;
  /** False when the result is byte-identical to the input (mongod's nModified semantics). */
  readonly changed: boolean;
}

export function applyUpdate(
  doc: Document,
  update: Document | Document[],
  options: UpdateOptions = {},
): UpdateResult {
  const hasArrayFilters = (options.arrayFilters?.length ?? 0) > 0;
  let result: Document;
  if (Array.isArray(update)) {
    if (hasArrayFilters) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        'arrayFilters may not be specified for pipeline-style updates',
      );
    }
    result = applyPipelineUpdate(doc, update, options.variables);
  } else if (!isPlainObject(update)) {
    throw new ServerError(
      ErrorCode.FailedToParse,
      'Update argument must be either an object or an array',
    );
  } else if (Object.keys(update)[0]?.startsWith('$')) {
    result = applyOperatorUpdate(doc, update, options);
  } else {
    if (hasArrayFilters) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        'arrayFilters may not be specified for replacement-style updates',
      );
    }
    result = applyReplacement(doc, update);
  }
  return { doc: result, changed: !sameBytes(doc, result) };
}

// =============================================================================================
// Replacement and pipeline updates: the new document keeps the old `_id`.

function assertIdUnchanged(original: Document, result: Document): void {
  if (original._id === undefined || result._id === undefined) return;
  if (!valuesEqual(original._id, result._id)) {
    throw new ServerError(
      ErrorCode.ImmutableField,
      `After applying the update, the (immutable) field '_id' was found to have been altered to _id: ${formatValue(result._id)}`,
    );
  }
}

/** `_id` first: mongod always stores `_id` as the first field. */
function withIdFirst(original: Document, replacement: Document): Document {
  const id = replacement._id !== undefined ? replacement._id : original._id;
  if (id === undefined) return replacement;
  const { _id: _ignored, ...rest } = replacement;
  return { _id: id, ...rest };
}

function applyReplacement(doc: Document, replacement: Document): Document {
  for (const key of Object.keys(replacement)) {
    if (key.startsWith('$')) {
      throw new ServerError(
        ErrorCode.DollarPrefixedFieldName,
        `The dollar ($) prefixed field '${key}' in '${key}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.`,
      );
    }
  }
  const result = cloneDocument(replacement);
  assertIdUnchanged(doc, result);
  return withIdFirst(doc, result);
}

const PIPELINE_UPDATE_STAGES = new Set([
  '$addFields',
  '$set',
  '$project',
  '$unset',
  '$replaceRoot',
  '$replaceWith',
]);

/** Stage names mongod knows; any of them outside the allowed set is "not allowed" (72). */
export const KNOWN_STAGES = new Set([
  ...PIPELINE_UPDATE_STAGES,
  '$match',
  '$group',
  '$sort',
  '$skip',
  '$limit',
  '$count',
  '$unwind',
  '$lookup',
  '$graphLookup',
  '$facet',
  '$bucket',
  '$bucketAuto',
  '$sortByCount',
  '$out',
  '$merge',
  '$sample',
  '$geoNear',
  '$redact',
  '$unionWith',
  '$setWindowFields',
  '$densify',
  '$fill',
  '$documents',
  '$collStats',
  '$indexStats',
  '$currentOp',
  '$listSessions',
  '$planCacheStats',
  '$search',
  '$changeStream',
]);

function applyPipelineUpdate(
  doc: Document,
  pipeline: Document[],
  variables: Document | undefined,
): Document {
  for (const stage of pipeline) {
    if (!isPlainObject(stage) || Object.keys(stage).length !== 1) {
      throw new ServerError(
        40323,
        'A pipeline stage specification object must contain exactly one field.',
      );
    }
    const name = Object.keys(stage)[0] as string;
    if (!KNOWN_STAGES.has(name)) {
      throw new ServerError(40324, `Unrecognized pipeline stage name: '${name}'`);
    }
    if (!PIPELINE_UPDATE_STAGES.has(name)) {
      throw new ServerError(
        ErrorCode.InvalidOptions,
        `${name} is not allowed to be used within an update`,
      );
    }
  }
  // The direct evaluator first (expressions.ts); mingo when it cannot answer exactly.
  const direct = variables === undefined ? runStagesDirectly(pipeline, doc) : BAIL;
  let output: unknown[];
  if (direct !== BAIL) {
    output = [direct];
  } else {
    try {
      output = runPipelineThroughMingo(doc, pipeline, variables);
    } catch (error) {
      throw asServerError(error);
    }
  }
  const result = output[0];
  if (output.length !== 1 || !isPlainObject(result)) {
    throw new ServerError(
      ErrorCode.BadValue,
      'The update pipeline must produce exactly one document',
    );
  }
  // A pipeline that drops `_id` keeps the original one (mongod's ObjectReplaceExecutor).
  assertIdUnchanged(doc, result);
  return withIdFirst(doc, result);
}

/**
 * The general path of `applyPipelineUpdate`: mingo, with the renaming of mingo-names.ts (exported
 * for the tests that hold the direct path to it).
 */
export function runPipelineThroughMingo(
  doc: Document,
  pipeline: Document[],
  variables: Document | undefined,
): unknown[] {
  // Special field names are renamed for mingo and back (mingo-names.ts).
  const found = scanPipeline(pipeline);
  // pinNow returns the pipeline itself when it has no `$$NOW` to pin.
  const stages = encodePipeline(
    (found & MENTIONS_NOW) === 0 ? pipeline : pinNow(pipeline, new Date()),
  );
  const options = mingoOptions(encodeVariables(variables));
  if (
    (found & MENTIONS_WRITING_EXPRESSION) === 0 &&
    leavesInputIntact(stages) &&
    unchangingDocumentHasNoRenamedName(doc)
  ) {
    // Nothing to rename and nothing that writes into its input: the pipeline reads the
    // stored document itself, and the result shares its unchanged parts (an array element
    // it kept, `$$ROOT` itself), which nothing mutates either (every update that writes into
    // a document copies it first). Only the parts it made are read for marked names.
    const run =
      variables === undefined
        ? runMapStages(stages, options, doc)
        : new Aggregator(stages, options).run([doc]);
    return hasMarkedNameBeside(run, [doc]) ? decodeValue(run) : run;
  }
  return decodeValue(new Aggregator(stages, options).run([encodeCopy(doc)]));
}

/** Whether `value` is what mingo's `$replaceWith`/`$replaceRoot` accept: an Object object. */
function isObjectObject(value: unknown): value is Document {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype
  );
}

/** A field name `$set`/`$addFields` sets directly: top level, no special name. */
function isDirectFieldName(field: string): boolean {
  return (
    field.length > 0 && field.charCodeAt(0) !== 36 && !field.includes('.') && !isSpecialName(field)
  );
}

/**
 * The update stages evaluated by the direct evaluator (expressions.ts), or BAIL: `$replaceWith`,
 * `$replaceRoot` and `$set`/`$addFields` of top-level fields, as mingo runs them (each `$set`
 * field evaluated on the stage's input, set on a shallow copy or removed when missing). Like the
 * general path for such stages, it reads the stored document without a copy and its result shares
 * the parts it kept; it answers only for a document without special names (mingo-names.ts), where
 * the general path renames nothing either.
 */
export function runStagesDirectly(pipeline: Document[], doc: Document): Document | Bail {
  let current: Document = doc;
  for (const stage of pipeline) {
    const name = Object.keys(stage)[0] as string;
    const spec = stage[name];
    switch (name) {
      case '$replaceWith':
      case '$replaceRoot': {
        let expr: unknown = spec;
        if (name === '$replaceRoot') {
          if (
            !isObjectObject(spec) ||
            Object.keys(spec).length !== 1 ||
            !Object.hasOwn(spec, 'newRoot')
          )
            return BAIL;
          expr = spec.newRoot;
        }
        const value = tryEvaluate(expr, current);
        if (!isObjectObject(value)) return BAIL;
        current = value;
        break;
      }
      case '$set':
      case '$addFields': {
        if (!isObjectObject(spec)) return BAIL;
        const fields = Object.keys(spec);
        if (fields.length === 0) return BAIL;
        const out: Document = { ...current };
        for (const field of fields) {
          if (!isDirectFieldName(field)) return BAIL;
          const value = tryEvaluate(spec[field], current);
          if (value === BAIL) return BAIL;
          if (value !== undefined) setField(out, field, value);
          else delete out[field];
        }
        current = out;
        break;
      }
      default:
        return BAIL;
    }
  }
  return unchangingDocumentHasNoRenamedName(doc) ? current : BAIL;
}

/**
 * mingo's expressions that write into the object their argument evaluates to, which is a part
 * of the input when the argument is a field path: `$dateToString` sets `onNull` on it and
 * `$dateFromParts` normalises its parts in place (mingo 7 operators/expression/date).
 */
const EXPRESSIONS_WRITING_ARGUMENT: ReadonlySet<string> = new Set([
  '$dateToString',
  '$dateFromParts',
]);

/**
 * Whether running these (renamed) update stages leaves the document they are given, and every
 * object and array inside it, as it was, so that they may run on the stored document instead
 * of a copy. mingo's `$replaceWith` and `$replaceRoot` only evaluate an expression; `$set` and
 * `$addFields` set each field on a shallow copy of the document, but a dotted name
 * (`{'a.b': 1}`) is set or removed inside the existing `a` (mingo `setValue`/`removeValue`);
 * `$project` and `$unset` remove nested fields from a shallow copy. Expressions do not write
 * into their arguments (projections and `$expr` evaluate them on stored documents), except
 * those of EXPRESSIONS_WRITING_ARGUMENT, which the caller rules out (`scanPipeline`).
 */
function leavesInputIntact(stages: Document[]): boolean {
  for (const stage of stages) {
    const name = Object.keys(stage)[0] as string;
    const spec = stage[name];
    switch (name) {
      case '$replaceWith':
      case '$replaceRoot':
        break;
      case '$set':
      case '$addFields':
        if (!isPlainObject(spec) || Object.keys(spec).some((field) => field.includes('.')))
          return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/**
 * The stream of one document that mingo's map-only stages (`leavesInputIntact`) are built on:
 * each stage hands `map` its step, as it does to mingo's lazy stream.
 */
class OneDocumentStream {
  readonly steps: ((doc: unknown, index: number) => unknown)[] = [];
  map(step: (doc: unknown, index: number) => unknown): this {
    this.steps.push(step);
    return this;
  }
}

/**
 * `new Aggregator(stages, options).run([doc])` for stages of `leavesInputIntact`, without the
 * aggregator and its lazy iterator: as mingo's `Aggregator.stream` does, every stage is built
 * first, in order, by the operator of the context (so a stage that fails to build fails before
 * any is evaluated), then the document goes through each stage's step in order. `options` must
 * be mingo's ComputeOptions without a root (what `mingoOptions` gives without variables of its
 * own), which the aggregator would copy: these stages only hand it to `evalExpr`, which copies
 * it before setting the root.
 */
function runMapStages(stages: Document[], options: Options, doc: Document): unknown[] {
  const stream = new OneDocumentStream();
  for (const stage of stages) {
    const name = Object.keys(stage)[0] as string;
    const operator = BSON_CONTEXT.getOperator(OpType.PIPELINE, name) as unknown as (
      collection: OneDocumentStream,
      spec: unknown,
      options: Options,
    ) => OneDocumentStream;
    if (operator(stream, stage[name], options) !== stream) {
      throw new Error(`mingo's ${name} is not a map-only stage`);
    }
  }
  let value: unknown = doc;
  for (const step of stream.steps) value = step(value, 0);
  return [value];
}

const MENTIONS_NOW = 1;
const MENTIONS_WRITING_EXPRESSION = 2;

/**
 * One read of a pipeline for what its update needs to know, as bits: MENTIONS_NOW when the
 * string `$$NOW` is anywhere in it (only then has `pinNow`, which leaves `$literal` values
 * alone, anything to replace), MENTIONS_WRITING_EXPRESSION when a name of
 * EXPRESSIONS_WRITING_ARGUMENT is a field name anywhere in it.
 */
function scanPipeline(value: unknown): number {
  if (typeof value === 'string') return value === '$$NOW' ? MENTIONS_NOW : 0;
  if (typeof value !== 'object' || value === null) return 0;
  let found = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) found |= scanPipeline(value[i]);
    return found;
  }
  if (!isPlainObject(value)) return 0;
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (EXPRESSIONS_WRITING_ARGUMENT.has(key)) found |= MENTIONS_WRITING_EXPRESSION;
    found |= scanPipeline(value[key]);
  }
  return found;
}

// =============================================================================================
// Operator updates: parse

const OPERATORS = new Set([
  '$set',
  '$unset',
  '$inc',
  '$mul',
  '$min',
  '$max',
  '$rename',
  '$push',
  '$addToSet',
  '$pull',
  '$pullAll',
  '$pop',
  '$currentDate',
  '$setOnInsert',
  '$bit',
]);

interface PushSpec {
  readonly each: unknown[];
  readonly position: number | undefined;
  readonly slice: number | undefined;
  readonly sort: ((a: unknown, b: unknown) => number) | undefined;
}

/** One `path: argument` of one operator, as written (positional components unresolved). */
interface Modifier {
  readonly op: string;
  readonly path: string;
  readonly parts: string[];
  readonly arg: unknown;
  /** `$rename` only: the destination. */
  readonly to?: string[];
  readonly push?: PushSpec;
  readonly pull?: (element: unknown) => boolean;
}

/** A modifier resolved to concrete paths (no `$`, `$[]`, `$[id]`). */
interface Concrete {
  readonly mod: Modifier;
  readonly parts: string[];
}

type ArrayFilters = Map<string, (element: unknown) => boolean>;

function applyOperatorUpdate(doc: Document, update: Document, options: UpdateOptions): Document {
  const arrayFilters = parseArrayFilters(options.arrayFilters ?? []);
  const usedIdentifiers = new Set<string>();
  const modifiers = parseModifiers(update, arrayFilters, usedIdentifiers);
  for (const id of arrayFilters.keys()) {
    if (!usedIdentifiers.has(id)) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        `The array filter for identifier '${id}' was not used in the update ${formatValue(update)}`,
      );
    }
  }

  const positional = (): number | undefined => {
    if (options.isUpsertInsert || !options.filter) return undefined;
    return compileFilter(options.filter).positionalIndex(doc);
  };
  const concrete: Concrete[] = [];
  for (const mod of modifiers) {
    if (mod.op === '$setOnInsert' && !options.isUpsertInsert) continue;
    for (const parts of expandPath(doc, mod.parts, arrayFilters, positional))
      concrete.push({ mod, parts });
  }
  assertNoConcreteConflicts(concrete);
  // mongod (5.0+) applies updates in field-name order, numeric names numerically.
  concrete.sort((a, b) =>
    comparePaths(
      a.mod.op === '$rename' ? (a.mod.to as string[]) : a.parts,
      b.mod.op === '$rename' ? (b.mod.to as string[]) : b.parts,
    ),
  );

  const result = cloneDocument(doc);
  const now = new Date();
  for (const c of concrete)
    applyModifier(result, c, { doc, now, isUpsertInsert: options.isUpsertInsert === true });

  if (doc._id !== undefined && (result._id === undefined || !valuesEqual(doc._id, result._id))) {
    const path = concrete.find((c) => c.parts[0] === '_id' || c.mod.to?.[0] === '_id');
    const dotted = path
      ? (path.mod.to?.[0] === '_id' ? path.mod.to : path.parts)?.join('.')
      : '_id';
    throw new ServerError(
      ErrorCode.ImmutableField,
      `Performing an update on the path '${dotted}' would modify the immutable field '_id'`,
    );
  }
  if (doc._id === undefined && result._id !== undefined) {
    // An upsert that sets `_id` itself: keep it first.
    return withIdFirst(result, result);
  }
  return result;
}

function comparePaths(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareFieldNames(a[i] as string, b[i] as string);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

function parseArrayFilters(filters: Document[]): ArrayFilters {
  const out: ArrayFilters = new Map();
  for (const filter of filters) {
    if (!isPlainObject(filter))
      throw new ServerError(ErrorCode.TypeMismatch, 'arrayFilters entries must be objects');
    const ids = new Set<string>();
    collectFilterIdentifiers(filter, ids);
    if (ids.size === 0) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        'Cannot use an expression without a top-level field name in arrayFilters',
      );
    }
    if (ids.size > 1) {
      const [a, b] = [...ids];
      throw new ServerError(
        ErrorCode.FailedToParse,
        `Error parsing array filter :: caused by :: Expected a single top-level field name, found '${a}' and '${b}'`,
      );
    }
    const id = [...ids][0] as string;
    if (!/^[a-z][a-zA-Z0-9]*$/.test(id)) {
      throw new ServerError(
        ErrorCode.BadValue,
        `Error parsing array filter :: caused by :: The top-level field name must be an alphanumeric string beginning with a lowercase letter, found '${id}'`,
      );
    }
    if (out.has(id)) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        `Found multiple array filters with the same top-level field name ${id}`,
      );
    }
    const test = compileFilter(filter);
    out.set(id, (element) => test({ [id]: element }));
  }
  return out;
}

/** Array filters name one identifier (`x` in `x` / `x.grade`), possibly inside $and/$or/$nor. */
function collectFilterIdentifiers(filter: Document, ids: Set<string>): void {
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$expr') {
      throw new ServerError(224, '$expr is not allowed in the context of an array filter');
    }
    if (key === '$and' || key === '$or' || key === '$nor') {
      if (Array.isArray(value))
        for (const child of value) if (isPlainObject(child)) collectFilterIdentifiers(child, ids);
    } else if (!key.startsWith('$')) {
      ids.add(splitPath(key)[0] as string);
    }
  }
}

function parseModifiers(
  update: Document,
  arrayFilters: ArrayFilters,
  used: Set<string>,
): Modifier[] {
  const modifiers: Modifier[] = [];
  const tree: PathTree = new Map();
  for (const [op, fields] of Object.entries(update)) {
    if (!OPERATORS.has(op)) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        `Unknown modifier: ${op}. Expected a valid update modifier or pipeline-style update specified as an array`,
      );
    }
    if (!isPlainObject(fields)) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        `Modifiers operate on fields but we found type ${bsonTypeName(fields)} instead. For example: {$mod: {<field>: ...}} not {${op}: ${formatValue(fields)}}`,
      );
    }
    for (const [path, arg] of Object.entries(fields)) {
      const parts = parseUpdatePath(path, arrayFilters, used);
      const mod = parseModifier(op, path, parts, arg);
      registerPath(tree, parts, path);
      if (mod.to) registerPath(tree, mod.to, mod.to.join('.'));
      modifiers.push(mod);
    }
  }
  return modifiers;
}

function parseUpdatePath(path: string, arrayFilters: ArrayFilters, used: Set<string>): string[] {
  if (path === '') throw new ServerError(56, 'An empty update path is not valid.');
  const parts = splitPath(path);
  if (parts.some((p) => p === '')) {
    throw new ServerError(
      56,
      `The update path '${path}' contains an empty field name, which is not allowed.`,
    );
  }
  const positionalCount = parts.filter((p) => p === '$').length;
  if (positionalCount > 1) {
    throw new ServerError(
      ErrorCode.BadValue,
      `Too many positional (i.e. '$') elements found in path '${path}'`,
    );
  }
  if (parts[0] === '$' || parts[0]?.startsWith('$[')) {
    throw new ServerError(
      ErrorCode.BadValue,
      `Cannot have positional (i.e. '$') element in the first position in path '${path}'`,
    );
  }
  for (const part of parts) {
    const id = /^\$\[(.*)\]$/.exec(part)?.[1];
    if (id === undefined || id === '') continue;
    if (!arrayFilters.has(id)) {
      throw new ServerError(
        ErrorCode.BadValue,
        `No array filter found for identifier '${id}' in path '${path}'`,
      );
    }
    used.add(id);
  }
  return parts;
}

/** Conflict detection over paths as written (mongod's UpdateObjectNode::parseAndMerge). */
type PathTree = Map<string, PathTree | true>;

function registerPath(tree: PathTree, parts: readonly string[], path: string): void {
  let node = tree;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const child = node.get(part);
    const last = i === parts.length - 1;
    if (child === true || (last && child !== undefined)) {
      throw new ServerError(
        ErrorCode.ConflictingUpdateOperators,
        `Updating the path '${path}' would create a conflict at '${parts.slice(0, i + 1).join('.')}'`,
      );
    }
    if (last) {
      node.set(part, true);
    } else if (child === undefined) {
      const next: PathTree = new Map();
      node.set(part, next);
      node = next;
    } else {
      node = child;
    }
  }
}

function isInteger(value: unknown): boolean {
  if (!isNumeric(value)) return false;
  const exact = toExactNumber(value);
  return exact.kind === 'finite' && exact.e >= 0;
}

function parseModifier(op: string, path: string, parts: string[], arg: unknown): Modifier {
  const base = { op, path, parts, arg };
  switch (op) {
    case '$inc':
    case '$mul':
      if (!isNumeric(arg)) {
        throw new ServerError(
          ErrorCode.TypeMismatch,
          `Cannot ${op === '$inc' ? 'increment' : 'multiply'} with non-numeric argument: ${formatElement(path, arg)}`,
        );
      }
      return base;
    case '$pop': {
      const n = isNumeric(arg) ? toDouble(arg) : Number.NaN;
      if (n !== 1 && n !== -1)
        throw new ServerError(
          ErrorCode.FailedToParse,
          `$pop expects 1 or -1, found: ${formatValue(arg)}`,
        );
      return base;
    }
    case '$pullAll':
      if (!Array.isArray(arg)) {
        throw new ServerError(
          ErrorCode.BadValue,
          `$pullAll requires an array argument but was given a ${bsonTypeName(arg)}`,
        );
      }
      return base;
    case '$push':
      return { ...base, push: parsePush(arg) };
    case '$addToSet': {
      if (isPlainObject(arg) && '$each' in arg) {
        if (!Array.isArray(arg.$each)) {
          throw new ServerError(
            ErrorCode.BadValue,
            `The argument to $each in $addToSet must be an array but it was of type ${bsonTypeName(arg.$each)}`,
          );
        }
      }
      return base;
    }
    case '$pull':
      return { ...base, pull: parsePullCondition(arg) };
    case '$rename': {
      if (typeof arg !== 'string') {
        throw new ServerError(
          ErrorCode.BadValue,
          `The 'to' field for $rename must be a string: ${path}: ${formatValue(arg)}`,
        );
      }
      const to = splitPath(arg);
      if (arg === '' || to.some((p) => p === ''))
        throw new ServerError(56, 'An empty update path is not valid.');
      if (parts.some((p) => p.startsWith('$'))) {
        throw new ServerError(
          ErrorCode.BadValue,
          `The source field for $rename may not be dynamic: ${path}`,
        );
      }
      if (to.some((p) => p.startsWith('$'))) {
        throw new ServerError(
          ErrorCode.BadValue,
          `The destination field for $rename may not be dynamic: ${arg}`,
        );
      }
      if (path === arg) {
        throw new ServerError(
          ErrorCode.BadValue,
          `The source and target field for $rename must differ: ${path}: ${formatValue(arg)}`,
        );
      }
      if (arg.startsWith(`${path}.`) || path.startsWith(`${arg}.`)) {
        throw new ServerError(
          ErrorCode.BadValue,
          `The source and target field for $rename must not be on the same path: ${path}: ${formatValue(arg)}`,
        );
      }
      return { ...base, to };
    }
    case '$currentDate': {
      const ok =
        arg === true ||
        arg === false ||
        (isPlainObject(arg) &&
          Object.keys(arg).length === 1 &&
          (arg.$type === 'date' || arg.$type === 'timestamp'));
      if (!ok) {
        throw new ServerError(
          ErrorCode.BadValue,
          `${formatElement(path, arg)} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({$type: 'timestamp/date'}).`,
        );
      }
      return base;
    }
    case '$bit': {
      if (!isPlainObject(arg) || Object.keys(arg).length === 0) {
        throw new ServerError(
          ErrorCode.BadValue,
          `The $bit modifier is not compatible with a ${bsonTypeName(arg)}. You must pass in an embedded document: {$bit: {field: {and/or/xor: #}}`,
        );
      }
      for (const [k, v] of Object.entries(arg)) {
        if (!['and', 'or', 'xor'].includes(k)) {
          throw new ServerError(
            ErrorCode.BadValue,
            `The $bit modifier only supports 'and', 'or', and 'xor', not '${k}' which is an unknown operator: {${k}: ${formatValue(v)}}`,
          );
        }
        if (!isInteger(v) || bsonTypeName(v) === 'double') {
          throw new ServerError(
            ErrorCode.BadValue,
            `The $bit modifier field must be an Integer(32/64 bit); a '${bsonTypeName(v)}' is not supported here: {${k}: ${formatValue(v)}}`,
          );
        }
      }
      return base;
    }
    default:
      return base;
  }
}

function parsePush(arg: unknown): PushSpec {
  if (!isPlainObject(arg) || !('$each' in arg)) {
    return { each: [arg], position: undefined, slice: undefined, sort: undefined };
  }
  for (const key of Object.keys(arg)) {
    if (!['$each', '$slice', '$sort', '$position'].includes(key)) {
      throw new ServerError(ErrorCode.BadValue, `Unrecognized clause in $push: ${key}`);
    }
  }
  if (!Array.isArray(arg.$each)) {
    throw new ServerError(
      ErrorCode.BadValue,
      `The argument to $each in $push must be an array but it was of type: ${bsonTypeName(arg.$each)}`,
    );
  }
  const intArg = (name: string, value: unknown): number | undefined => {
    if (value === undefined) return undefined;
    if (!isInteger(value)) {
      throw new ServerError(
        ErrorCode.BadValue,
        `The value for ${name} must be an integer value but was given type: ${bsonTypeName(value)}`,
      );
    }
    return toDouble(value);
  };
  return {
    each: arg.$each,
    position: intArg('$position', arg.$position),
    slice: intArg('$slice', arg.$slice),
    sort: arg.$sort === undefined ? undefined : parsePushSort(arg.$sort),
  };
}

function parsePushSort(spec: unknown): (a: unknown, b: unknown) => number {
  const invalid = () =>
    new ServerError(
      ErrorCode.BadValue,
      'The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields',
    );
  if (isNumeric(spec)) {
    const dir = toDouble(spec);
    if (dir !== 1 && dir !== -1) throw invalid();
    return (a, b) => dir * compareValues(a, b);
  }
  if (!isPlainObject(spec) || Object.keys(spec).length === 0) throw invalid();
  for (const [field, dir] of Object.entries(spec)) {
    if (field.startsWith('$') || (toDouble(dir) !== 1 && toDouble(dir) !== -1)) {
      throw invalid();
    }
  }
  const cmp = compareBySort(spec);
  const asDoc = (v: unknown): Document => (isPlainObject(v) ? v : {});
  return (a, b) => cmp(asDoc(a), asDoc(b));
}

/**
 * `$pull` conditions: a scalar/array/regex matches equal elements; an operator document
 * (`{$gte: 6}`) applies to each element; a plain document is a query on object elements.
 */
function parsePullCondition(arg: unknown): (element: unknown) => boolean {
  if (isPlainObject(arg)) {
    const first = Object.keys(arg)[0];
    if (first?.startsWith('$') && !['$and', '$or', '$nor', '$expr'].includes(first)) {
      const test = compileFilter({ v: arg });
      return (element) => test({ v: element });
    }
    const test = compileFilter(arg);
    return (element) => isPlainObject(element) && test(element);
  }
  if (arg instanceof RegExp || (arg as { _bsontype?: string } | null)?._bsontype === 'BSONRegExp') {
    const test = compileFilter({ v: arg });
    return (element) => typeof element === 'string' && test({ v: element });
  }
  return (element) => valuesEqual(element, arg);
}

// =============================================================================================
// Operator updates: resolve positional components

/**
 * The concrete paths a written path stands for in `doc`: `$` is the element the query matched,
 * `$[]` every element, `$[id]` the elements its array filter accepts.
 */
function expandPath(
  doc: Document,
  parts: string[],
  arrayFilters: ArrayFilters,
  positional: () => number | undefined,
): string[][] {
  const out: string[][] = [];
  const walk = (value: unknown, i: number, prefix: string[]): void => {
    if (i === parts.length) {
      out.push(prefix);
      return;
    }
    const part = parts[i] as string;
    if (part === '$') {
      const index = positional();
      if (index === undefined) {
        throw new ServerError(
          ErrorCode.BadValue,
          'The positional operator did not find the match needed from the query.',
        );
      }
      const next = Array.isArray(value) ? value[index] : undefined;
      walk(next, i + 1, [...prefix, String(index)]);
      return;
    }
    const id = /^\$\[(.*)\]$/.exec(part)?.[1];
    if (id !== undefined) {
      if (value === undefined) {
        throw new ServerError(
          ErrorCode.BadValue,
          `The path '${prefix.join('.')}' must exist in the document in order to apply array updates.`,
        );
      }
      if (!Array.isArray(value)) {
        throw new ServerError(
          ErrorCode.BadValue,
          `Cannot apply array updates to non-array element ${prefix[prefix.length - 1]}: ${formatValue(value)}`,
        );
      }
      const accept = id === '' ? () => true : (arrayFilters.get(id) as (e: unknown) => boolean);
      value.forEach((element, k) => {
        if (accept(element)) walk(element, i + 1, [...prefix, String(k)]);
      });
      return;
    }
    walk(childOf(value, part), i + 1, [...prefix, part]);
  };
  walk(doc, 0, []);
  return out;
}

function childOf(value: unknown, part: string): unknown {
  if (Array.isArray(value)) return isArrayIndex(part) ? value[Number(part)] : undefined;
  if (isPlainObject(value)) return Object.hasOwn(value, part) ? value[part] : undefined;
  return undefined;
}

/** Two concrete paths may still collide (`a.$[]` and `a.0`): mongod's "Update created a conflict". */
function assertNoConcreteConflicts(concrete: Concrete[]): void {
  const all: string[][] = [];
  for (const c of concrete) {
    all.push(c.parts);
    if (c.mod.to) all.push(c.mod.to);
  }
  all.sort(comparePaths);
  for (let i = 1; i < all.length; i++) {
    const a = all[i - 1] as string[];
    const b = all[i] as string[];
    if (a.length <= b.length && a.every((p, k) => p === b[k])) {
      throw new ServerError(
        ErrorCode.ConflictingUpdateOperators,
        `Update created a conflict at '${a.join('.')}'`,
      );
    }
  }
}

// =============================================================================================
// Operator updates: apply

interface ApplyContext {
  /** The document before the update (for `_id` in messages). */
  readonly doc: Document;
  readonly now: Date;
  readonly isUpsertInsert: boolean;
}

/** Where a modifier writes: the container and the key in it. */
interface Slot {
  readonly parent: Document | unknown[];
  readonly key: string;
}

const CREATING = new Set([
  '$set',
  '$setOnInsert',
  '$inc',
  '$mul',
  '$min',
  '$max',
  '$push',
  '$addToSet',
  '$currentDate',
  '$bit',
]);

function notViable(field: string, elementName: string, element: unknown): ServerError {
  return new ServerError(
    ErrorCode.PathNotViable,
    `Cannot create field '${field}' in element ${formatElement(elementName, element)}`,
  );
}

/**
 * Walks to the container of the last component. `create` builds missing objects (and pads
 * arrays with nulls) and fails on scalars in the way (PathNotViable); `existing` returns
 * undefined for a missing path but fails on scalars; `lenient` ($unset, $rename source) never
 * fails.
 */
type LocateMode = 'create' | 'existing' | 'lenient';

function locate(root: Document, parts: readonly string[], mode: LocateMode): Slot | undefined {
  let container: Document | unknown[] = root;
  let containerName = '';
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (Array.isArray(container) && !isArrayIndex(part)) {
      if (mode === 'lenient') return undefined;
      throw notViable(part, containerName, container);
    }
    if (i === parts.length - 1) return { parent: container, key: part };
    const child: unknown = Array.isArray(container)
      ? container[Number(part)]
      : getField(container, part);
    if (child === undefined) {
      if (mode !== 'create') return undefined;
      const created: Document = {};
      setIn(container, part, created);
      container = created;
    } else if (isPlainObject(child) || Array.isArray(child)) {
      container = child;
    } else {
      if (mode === 'lenient') return undefined;
      throw notViable(parts[i + 1] as string, part, child);
    }
    containerName = part;
  }
  return undefined;
}

function setIn(container: Document | unknown[], key: string, value: unknown): void {
  if (Array.isArray(container)) {
    const index = Number(key);
    while (container.length < index) container.push(null);
    container[index] = value;
  } else {
    setField(container, key, value);
  }
}

function getIn(slot: Slot): unknown {
  return Array.isArray(slot.parent)
    ? slot.parent[Number(slot.key)]
    : getField(slot.parent, slot.key);
}

function idElement(ctx: ApplyContext): string {
  return ctx.doc._id === undefined ? '{}' : formatElement('_id', ctx.doc._id);
}

function applyModifier(root: Document, c: Concrete, ctx: ApplyContext): void {
  const { mod, parts } = c;
  if (mod.op === '$rename') {
    applyRename(root, parts, mod.to as string[]);
    return;
  }
  const mode = CREATING.has(mod.op) ? 'create' : mod.op === '$unset' ? 'lenient' : 'existing';
  const slot = locate(root, parts, mode);
  if (!slot) return;
  const current = getIn(slot);
  const field = slot.key;
  switch (mod.op) {
    case '$set':
    case '$setOnInsert':
      setIn(slot.parent, field, cloneDocument(mod.arg));
      return;
    case '$unset':
      if (current === undefined) return;
      if (Array.isArray(slot.parent)) slot.parent[Number(field)] = null;
      else delete slot.parent[field];
      return;
    case '$inc':
    case '$mul': {
      if (current !== undefined && !isNumeric(current)) {
        throw new ServerError(
          ErrorCode.TypeMismatch,
          `Cannot apply ${mod.op} to a value of non-numeric type. ${idElement(ctx)} has the field '${field}' of non-numeric type ${bsonTypeName(current)}`,
        );
      }
      const base = current === undefined ? (mod.op === '$inc' ? 0 : zeroLike(mod.arg)) : current;
      const value =
        current === undefined && mod.op === '$inc'
          ? cloneDocument(mod.arg)
          : (mod.op === '$inc' ? addNumbers : multiplyNumbers)(base, mod.arg);
      setIn(slot.parent, field, value);
      return;
    }
    case '$min':
    case '$max': {
      const c0 = current === undefined ? undefined : compareValues(mod.arg, current);
      if (c0 === undefined || (mod.op === '$min' ? c0 < 0 : c0 > 0))
        setIn(slot.parent, field, cloneDocument(mod.arg));
      return;
    }
    case '$currentDate': {
      const wantsTimestamp = isPlainObject(mod.arg) && mod.arg.$type === 'timestamp';
      const value = wantsTimestamp
        ? new Timestamp({ t: Math.floor(ctx.now.getTime() / 1000), i: 1 })
        : new Date(ctx.now.getTime());
      setIn(slot.parent, field, value);
      return;
    }
    case '$push': {
      if (current !== undefined && !Array.isArray(current)) {
        throw new ServerError(
          ErrorCode.BadValue,
          `The field '${field}' must be an array but is of type ${bsonTypeName(current)} in document ${idElement(ctx)}`,
        );
      }
      setIn(slot.parent, field, pushed(current ?? [], mod.push as PushSpec));
      return;
    }
    case '$addToSet': {
      if (current !== undefined && !Array.isArray(current)) {
        throw new ServerError(
          ErrorCode.BadValue,
          `Cannot apply $addToSet to non-array field. Field named '${field}' has non-array type ${bsonTypeName(current)}`,
        );
      }
      const items =
        isPlainObject(mod.arg) && '$each' in mod.arg ? (mod.arg.$each as unknown[]) : [mod.arg];
      const array = [...((current as unknown[] | undefined) ?? [])];
      for (const item of items) {
        if (!array.some((e) => valuesEqual(e, item))) array.push(cloneDocument(item));
      }
      setIn(slot.parent, field, array);
      return;
    }
    case '$pull':
    case '$pullAll': {
      if (current === undefined) return;
      if (!Array.isArray(current)) {
        throw new ServerError(ErrorCode.BadValue, 'Cannot apply $pull to a non-array value');
      }
      const remove =
        mod.op === '$pull'
          ? (mod.pull as (e: unknown) => boolean)
          : (e: unknown) => (mod.arg as unknown[]).some((x) => valuesEqual(e, x));
      setIn(
        slot.parent,
        field,
        current.filter((e) => !remove(e)),
      );
      return;
    }
    case '$pop': {
      if (current === undefined) return;
      if (!Array.isArray(current)) {
        throw new ServerError(
          ErrorCode.TypeMismatch,
          `Path '${parts.join('.')}' contains an element of non-array type '${bsonTypeName(current)}'`,
        );
      }
      if (current.length === 0) return;
      setIn(slot.parent, field, Number(mod.arg) === 1 ? current.slice(0, -1) : current.slice(1));
      return;
    }
    case '$bit': {
      const value = current ?? 0;
      if (!isInteger(value) || bsonTypeName(value) === 'double') {
        throw new ServerError(
          ErrorCode.BadValue,
          `Cannot apply $bit to a value of non-integral type.${idElement(ctx)} has the field ${field} of non-integer type ${bsonTypeName(value)}`,
        );
      }
      let result = integerValue(value) ?? 0n;
      const isLong = bsonTypeName(value) === 'long';
      for (const [k, v] of Object.entries(mod.arg as Document)) {
        const operand = integerValue(v) ?? 0n;
        result = k === 'and' ? result & operand : k === 'or' ? result | operand : result ^ operand;
      }
      setIn(
        slot.parent,
        field,
        isLong ? Long.fromBigInt(BigInt.asIntN(64, result)) : Number(BigInt.asIntN(32, result)),
      );
      return;
    }
    default:
      return;
  }
}

function pushed(array: unknown[], spec: PushSpec): unknown[] {
  const out = [...array];
  const items = spec.each.map(cloneDocument);
  const pos = spec.position;
  const at =
    pos === undefined
      ? out.length
      : pos >= 0
        ? Math.min(pos, out.length)
        : Math.max(0, out.length + pos);
  out.splice(at, 0, ...items);
  if (spec.sort) out.sort(spec.sort);
  if (spec.slice !== undefined)
    return spec.slice >= 0 ? out.slice(0, spec.slice) : out.slice(spec.slice);
  return out;
}

function applyRename(root: Document, from: string[], to: string[]): void {
  const assertNoArray = (parts: string[], which: 'source' | 'destination'): void => {
    let value: unknown = root;
    for (let i = 0; i < parts.length; i++) {
      if (Array.isArray(value)) {
        throw new ServerError(
          ErrorCode.BadValue,
          `The ${which} field cannot be an array element, '${parts.join('.')}' in doc with ${parts[i - 1]}: ${formatValue(value)}`,
        );
      }
      value = isPlainObject(value) ? getField(value, parts[i] as string) : undefined;
      if (value === undefined) return;
    }
  };
  assertNoArray(from, 'source');
  const source = locate(root, from, 'lenient');
  if (!source || getIn(source) === undefined) return;
  assertNoArray(to, 'destination');
  const value = getIn(source);
  delete (source.parent as Document)[source.key];
  const target = locate(root, to, 'create');
  if (target) setIn(target.parent, target.key, value);
}

// ---------------------------------------------------------------------------------------------
// $mul on a missing field stores a zero of the argument's type (arithmetic: values.ts).

function integerValue(value: unknown): bigint | undefined {
  const exact = toExactNumber(value);
  if (exact.kind !== 'finite' || exact.e < 0) return undefined;
  return exact.m * 10n ** BigInt(exact.e);
}

function zeroLike(arg: unknown): unknown {
  const type = bsonTypeName(arg);
  if (type === 'decimal') return Decimal128.fromString('0');
  if (type === 'long') return Long.fromNumber(0);
  return 0;
}

// =============================================================================================
// Upsert

/**
 * The document an upsert starts from: the filter's equality fields (`{a: 1}`, `{a: {$eq: 1}}`,
 * `$and` of those; dotted paths build sub-documents). The caller then applies the update with
 * `isUpsertInsert: true`. For a replacement update only `_id` survives (applyUpdate's replacement
 * keeps just the seed's `_id`).
 * See https://www.mongodb.com/docs/manual/reference/method/db.collection.updateone/#upsert
 */
export function upsertSeedDocument(filter: Document): Document {
  const fields = equalityFieldsForUpsert(filter);
  const paths = fields.map(([path]) => splitPath(path));
  const order = paths
    .map((_, i) => i)
    .sort((i, j) => comparePaths(paths[i] as string[], paths[j] as string[]));
  for (let k = 1; k < order.length; k++) {
    const a = paths[order[k - 1] as number] as string[];
    const b = paths[order[k] as number] as string[];
    if (a.length <= b.length && a.every((p, i) => p === b[i])) {
      const message =
        a.length === b.length
          ? `cannot infer query fields to set, path '${a.join('.')}' is matched twice`
          : `cannot infer query fields to set, both paths '${a.join('.')}' and '${b.join('.')}' are matched`;
      throw new ServerError(ErrorCode.NotSingleValueField, message);
    }
  }
  const seed: Document = {};
  for (const [path, value] of fields) {
    const parts = splitPath(path);
    let node = seed;
    for (const part of parts.slice(0, -1)) {
      const next = getField(node, part);
      if (isPlainObject(next)) {
        node = next;
      } else {
        const created: Document = {};
        setField(node, part, created);
        node = created;
      }
    }
    setField(node, parts[parts.length - 1] as string, cloneDocument(value));
  }
  return seed._id === undefined ? seed : withIdFirst(seed, seed);
}
