/**
 * Argument validation shared by every primitive. Each check throws InvalidArgumentError naming
 * the primitive and the option, before any command is sent.
 *
 * Driver objects are recognised by shape, not `instanceof`, so that an application with two
 * copies of the driver (or a Mongoose connection's underlying driver) still works.
 *
 * Options often come straight from a request body, so every check assumes hostile input: path
 * segments that reach a JavaScript prototype (`__proto__`, `constructor`, `prototype`), NUL
 * bytes, plain objects posing as BSON values, NaN hidden in a BSON number, cyclic or absurdly
 * deep objects. Each is refused here, before a command is built, never left for the driver's
 * serialiser (a bare RangeError or BSONError) or the server to find.
 */
import type {
  Binary,
  ClientSession,
  Collection,
  Decimal128,
  Document,
  Double,
  Int32,
  Long,
  MongoClient,
  ObjectId,
} from 'mongodb';
import { InvalidArgumentError } from './errors.js';
import { bsonType, numericValue } from './values.js';

/** A value that identifies something or names a state; see `isScalar`. */
export type ScalarValue =
  | string
  | number
  | boolean
  | Date
  | ObjectId
  | Decimal128
  | Long
  | Int32
  | Double
  | Binary;

/** Scalar types accepted as identity values (element match keys, claim states). */
const SCALAR_BSON_TYPES = new Set(['ObjectId', 'Decimal128', 'Binary', 'Long', 'Int32', 'Double']);

/**
 * Path segments and field names that name a JavaScript prototype. To MongoDB they are ordinary
 * field names, but a document rebuilt or read along them in JavaScript reaches
 * `Object.prototype` (pollution of the whole process) or inherited members.
 */
const PROTOTYPE_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * How deeply an option's objects and arrays may nest. MongoDB stores documents nested at most
 * 100 levels; a filter or value nested deeper cannot be a sensible request (the library nests
 * it a few levels further inside its own command), and a cyclic one cannot be serialised.
 */
const MAX_DEPTH = 100;

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'an invalid Date' : 'a Date';
  const type = bsonType(value);
  if (type !== undefined)
    return `a ${type}${isFiniteBson(value, type) ? '' : ` (${String(value)})`}`;
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * Why `value`, what a matched document holds at a field a numeric guard compares
 * (`field >= floor + amount`, `counter < capacity`), can never satisfy that guard: `'lacks it'`
 * (missing), `'holds the string "10"'`, `'holds NaN'`, …; undefined when it is a number of a
 * BSON numeric type (int, long, double, Decimal128) other than NaN. Such a guard silently
 * never matches, which would read as a business outcome (`insufficient`, `full`): the failure
 * path reports it instead, naming the option.
 */
export function notANumber(value: unknown): string | undefined {
  if (value === undefined) return 'lacks it';
  const n = numericValue(value);
  if (n !== undefined && !Number.isNaN(n)) return undefined;
  return `holds ${describe(value)}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * False for a BSON number holding NaN or ±Infinity (`new Double(NaN)`,
 * `Decimal128.fromString('Infinity')`): valid BSON, but never equal to itself (NaN) or a
 * sensible identity, state or amount. Decimal128 is judged by its own text, not by converting
 * to a double (which would turn a finite 1E+6000 into Infinity).
 */
function isFiniteBson(value: unknown, type: string): boolean {
  if (type === 'Double') return Number.isFinite((value as Double).value);
  if (type === 'Decimal128') return !/^-?(NaN|Inf)/i.test(String(value));
  return true;
}

/** A value that identifies something: string, finite number, boolean, Date, ObjectId, Decimal128, UUID/Binary, Long. */
export function isScalar(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value instanceof Date) return !Number.isNaN(value.getTime());
      const type = bsonType(value);
      return type !== undefined && SCALAR_BSON_TYPES.has(type) && isFiniteBson(value, type);
    }
    default:
      return false;
  }
}

/**
 * The longest string taken as a path, a field name or an identity (`member`, a state, a `match`
 * value). MongoDB sets no smaller limit than the 16 MB document, but no real field path or id
 * comes near this: a longer one is a request trying to bloat the document (it is stored in
 * it) or the command, and is refused like the 200-character `opId` and 512-character `key`.
 */
export const MAX_NAME_LENGTH = 1024;

/**
 * Whether a leaf of a value sent as BSON (a filter, a stored value) can be serialised as what
 * it looks like. The driver drops functions silently (a filter `{ _id: id, owner: fn }`
 * becomes `{ _id: id }`, matching more), writes an invalid Date as 1970-01-01, and serialises
 * any other class instance (a ClientSession, a Map) as its enumerable fields.
 */
function bsonLeafProblem(value: unknown, at: string): string | undefined {
  if (typeof value === 'function' || typeof value === 'symbol') {
    return `holds a ${typeof value} at ${at}, which is not a BSON value (the driver would drop or mangle it)`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || isPlainObject(value))
    return undefined;
  if (value instanceof Date) {
    return Number.isNaN(value.getTime())
      ? `holds an invalid Date at ${at} (the driver would store it as 1970-01-01)`
      : undefined;
  }
  if (value instanceof RegExp || ArrayBuffer.isView(value) || bsonType(value) !== undefined)
    return undefined;
  return `holds ${describe(value)} of class ${value.constructor?.name ?? 'unknown'} at ${at}, which is not a BSON value (use plain objects, arrays, Dates and the driver's BSON classes)`;
}

/**
 * The problem with an option's value as a whole, with where it lies (`at`, e.g.
 * `level.field` or `filter._id`), or undefined: walks plain objects and arrays (BSON values,
 * Dates, sessions and other class instances are leaves) looking for a cycle, nesting deeper
 * than MAX_DEPTH, a key holding a NUL byte (BSON keys are NUL-terminated) and plain objects
 * that carry a `_bsontype` key (a JSON body posing as a BSON value). With `bson` (a value sent
 * to the server as it is: a filter, a stored value), also leaves that are no BSON value (see
 * `bsonLeafProblem`).
 */
function structureProblem(
  root: unknown,
  option: string,
  bson = false,
): StructureProblem | undefined {
  // A number, a string, a boolean: nothing to walk, nothing allocated (the common option).
  if (!bson && (typeof root !== 'object' || root === null)) return undefined;
  return visitStructure(root, option, 1, bson, []);
}

interface StructureProblem {
  readonly at: string;
  readonly problem: string;
}

/** structureProblem at one value; `ancestors` are the objects and arrays enclosing it. */
function visitStructure(
  value: unknown,
  at: string,
  depth: number,
  bson: boolean,
  ancestors: object[],
): StructureProblem | undefined {
  if (bson) {
    const problem = bsonLeafProblem(value, at);
    if (problem !== undefined) return { at, problem };
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const array = Array.isArray(value);
  if (!array && !isPlainObject(value)) return undefined;
  if (ancestors.includes(value))
    return {
      at,
      problem: `is cyclic (${at} refers back to an enclosing object): pass a tree of plain values, without the back-reference`,
    };
  if (depth > MAX_DEPTH)
    return {
      at,
      problem: `nests deeper than ${MAX_DEPTH} levels (at ${at}), more than MongoDB stores: flatten it`,
    };
  if (!array && Object.hasOwn(value, '_bsontype')) {
    return {
      at,
      problem: `holds a plain object with a "_bsontype" key at ${at}, which is not a BSON value (build BSON values with the driver's classes)`,
    };
  }
  ancestors.push(value);
  for (const key of Object.keys(value)) {
    if (key.includes('\0'))
      return {
        at,
        problem: `has a field name with a NUL byte at ${at}: remove it (MongoDB field names cannot hold one)`,
      };
    const found = visitStructure(
      (value as Record<string, unknown>)[key],
      `${at}.${key}`,
      depth + 1,
      bson,
      ancestors,
    );
    if (found !== undefined) return found;
  }
  ancestors.pop();
  return undefined;
}

/**
 * The MongoClient a driver Collection belongs to: its `client` (internal in the driver's types,
 * set from the Db by driver 6 and 7), else its Db's public `client`. Undefined when the object
 * does not say (a wrapper that is not a driver Collection): ownership checks are then skipped
 * rather than guessed.
 */
function clientOf(collection: object): unknown {
  const candidate = collection as { client?: unknown; db?: { client?: unknown } };
  if (typeof candidate.client === 'object' && candidate.client !== null) return candidate.client;
  const viaDb = candidate.db?.client;
  return typeof viaDb === 'object' && viaDb !== null ? viaDb : undefined;
}

/**
 * The name of a Mongoose Model passed where a driver Collection belongs (the easiest mistake
 * for a Mongoose user: `guardedDecrement(Product, …)` instead of `Product.collection`), else
 * undefined. Recognised by shape, without importing Mongoose: a Model is a function (its class)
 * with a string `modelName` and a `collection` object. The name is quoted as a string when it
 * is not a plain identifier, and cut to 100 characters.
 */
function mongooseModelName(value: unknown): string | undefined {
  if (typeof value !== 'function') return undefined;
  const candidate = value as { modelName?: unknown; collection?: unknown };
  if (typeof candidate.modelName !== 'string' || typeof candidate.collection !== 'object') {
    return undefined;
  }
  const name = candidate.modelName.slice(0, 100);
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
}

/**
 * Validation helpers bound to one primitive's name, for its error messages. A class, so that
 * the helpers live once on its prototype: every call of every primitive creates one, and an
 * object literal of arrow functions would allocate each helper anew per call.
 */
export class Validator {
  constructor(private readonly primitive: string) {}

  fail(option: string, problem: string): never {
    throw new InvalidArgumentError(this.primitive, option, problem);
  }

  /**
   * The options object, and every plain object or array in it: no cycle, no nesting deeper
   * than MongoDB allows, no NUL byte in a key, no plain object posing as a BSON value. The
   * error names the option (for an array of objects, down to the element's key, e.g.
   * `items.0.filter`).
   */
  options<T>(value: T): NonNullable<T> {
    if (!isPlainObject(value)) this.fail('options', `must be an object, got ${describe(value)}`);
    for (const [key, inner] of Object.entries(value as object)) {
      // Named where it lies (`level.field`, `items.0.filter._id`): a nested key is an option
      // too, or a field inside one.
      const found = structureProblem(inner, key);
      if (found !== undefined) this.fail(found.at, found.problem);
    }
    return value as NonNullable<T>;
  }

  collection<T extends Document>(value: Collection<T>, option = 'collection'): Collection<T> {
    const candidate = value as Partial<Collection<T>> | null | undefined;
    if (
      typeof candidate !== 'object' ||
      candidate === null ||
      typeof candidate.collectionName !== 'string' ||
      typeof candidate.findOneAndUpdate !== 'function'
    ) {
      const model = mongooseModelName(value);
      if (model !== undefined) {
        this.fail(
          option,
          `must be a driver Collection, got the Mongoose Model ${model}: pass its driver collection, ${model}.collection, instead (these calls bypass Mongoose middleware, validation and timestamps)`,
        );
      }
      this.fail(
        option,
        `must be a driver Collection (db.collection(name)), got ${describe(value)}`,
      );
    }
    return value;
  }

  /**
   * A MongoClient; with `collection`, the one that collection belongs to: statements of a
   * session of another client would run outside its transaction, or fail after earlier ones
   * were written.
   */
  client(value: MongoClient | undefined, option = 'client', collection?: object): MongoClient {
    const candidate = value as Partial<MongoClient> | null | undefined;
    if (
      typeof candidate !== 'object' ||
      candidate === null ||
      typeof candidate.startSession !== 'function'
    ) {
      this.fail(option, `must be a connected MongoClient, got ${describe(value)}`);
    }
    const owner = collection === undefined ? undefined : clientOf(collection);
    if (owner !== undefined && owner !== value) {
      this.fail(
        option,
        'is not the MongoClient that owns the collection: pass the client the collection was obtained from',
      );
    }
    return value as MongoClient;
  }

  /**
   * A live session of the MongoClient that `collection` belongs to. A driver ClientSession
   * and a driver Collection both hold their MongoClient in a `client` property (internal in
   * the driver's types, present in 6.x and 7.x): an object without one is no ClientSession,
   * whatever methods it has, and a session of another client would run the statements
   * outside the caller's transaction (or fail on the server after earlier ones were sent).
   * A collection wrapper that does not expose its client (not a driver Collection) is only
   * checked for a genuine session.
   */
  session(
    value: ClientSession | undefined,
    collection: object,
    option = 'session',
  ): ClientSession | undefined {
    if (value === undefined) return undefined;
    const candidate = value as Partial<ClientSession> | null;
    if (
      typeof candidate !== 'object' ||
      candidate === null ||
      typeof candidate.inTransaction !== 'function' ||
      typeof candidate.endSession !== 'function'
    ) {
      this.fail(option, `must be a ClientSession (client.startSession()), got ${describe(value)}`);
    }
    const owner = (value as { client?: unknown }).client;
    if (
      typeof owner !== 'object' ||
      owner === null ||
      typeof (owner as Partial<MongoClient>).startSession !== 'function'
    ) {
      this.fail(
        option,
        'must be a ClientSession started by client.startSession(), not a look-alike',
      );
    }
    const collectionClient = clientOf(collection);
    if (collectionClient !== undefined && collectionClient !== owner) {
      this.fail(
        option,
        'belongs to another MongoClient than the collection: start it from the client the collection was obtained from',
      );
    }
    if (value.hasEnded)
      this.fail(
        option,
        'is a session that has already ended: start a new one with client.startSession()',
      );
    return value;
  }

  /** A query filter: a plain object, not empty (it selects the document to change). */
  filter(value: unknown, option = 'filter'): Document {
    if (!isPlainObject(value)) {
      return this.fail(option, `must be a query filter object, got ${describe(value)}`);
    }
    if (Object.keys(value).length === 0) {
      this.fail(option, 'must not be empty: it selects the document to change');
    }
    const found = structureProblem(value, option, true);
    if (found !== undefined) this.fail(found.at, found.problem);
    return value;
  }

  /** A plain object of fields (possibly empty). */
  fields(value: unknown, option: string): Record<string, unknown> {
    if (!isPlainObject(value)) {
      return this.fail(option, `must be an object of fields, got ${describe(value)}`);
    }
    const found = structureProblem(value, option);
    if (found !== undefined) this.fail(found.at, found.problem);
    return value;
  }

  /**
   * A plain object of fields whose values are stored as given (`set` of claimOnce, `fields`
   * of incrementOrPush): as `fields`, every value a BSON value (see `bsonLeafProblem`), and no
   * key inside a value that `safeSegments` refuses: `set: { a: { __proto__: … } }` writes the
   * same field `a.__proto__` as the dotted path that `path` refuses. Keys starting with `$`
   * are data here (the guides promise `{ $inc: 1 }` is stored as given).
   */
  storedFields(value: unknown, option: string): Record<string, unknown> {
    const fields = this.fields(value, option);
    const found = structureProblem(fields, option, true);
    if (found !== undefined) this.fail(found.at, found.problem);
    const visit = (inner: unknown, at: string): void => {
      if (
        typeof inner !== 'object' ||
        inner === null ||
        !(Array.isArray(inner) || isPlainObject(inner))
      )
        return;
      for (const key of Object.keys(inner)) {
        const where = `${at}.${key}`;
        if (!Array.isArray(inner)) this.safeSegments(key, where);
        visit((inner as Record<string, unknown>)[key], where);
      }
    };
    for (const [key, inner] of Object.entries(fields)) visit(inner, `${option}.${key}`);
    return fields;
  }

  /**
   * A value the library sends as given (e.g. the update a callback returned): no cycle, no
   * nesting deeper than MongoDB allows, no NUL byte in a key, no plain object posing as a BSON
   * value. Option objects are checked by `options` already.
   */
  serialisable<T>(value: T, option: string): T {
    const found = structureProblem(value, option, true);
    // Named as the option: the value comes from the caller's callback, not from an option key.
    if (found !== undefined) this.fail(option, found.problem);
    return value;
  }

  /**
   * A dotted field path such as `'stock'` or `'data.cart'`: no `$`, no empty segment, no NUL
   * byte, no `__proto__`/`constructor`/`prototype` segment (see `safeSegments`).
   */
  path(value: unknown, option: string): string {
    if (typeof value !== 'string' || value.length === 0) {
      return this.fail(option, `must be a non-empty field path string, got ${describe(value)}`);
    }
    if (value.length > MAX_NAME_LENGTH)
      this.fail(option, `must be at most ${MAX_NAME_LENGTH} characters, got ${value.length}`);
    for (const segment of value.split('.')) {
      if (segment.length === 0)
        this.fail(option, `has an empty segment: ${JSON.stringify(value)}: remove the extra "."`);
      if (segment.startsWith('$'))
        this.fail(
          option,
          `must not contain operators or positional segments: ${JSON.stringify(value)}`,
        );
    }
    return this.safeSegments(value, option);
  }

  /**
   * Refuses a path (or field name) the library could not handle safely in JavaScript: a NUL
   * byte (BSON field names end at one, so the server would see another name) or a segment
   * `__proto__`, `constructor` or `prototype`. Those are ordinary field names to MongoDB, but
   * rebuilding or reading a returned document along them reaches `Object.prototype`: a
   * `__proto__.isAdmin` counter would set `isAdmin` on every object of the process.
   */
  safeSegments(value: string, option: string): string {
    if (value.includes('\0'))
      this.fail(option, `must not contain a NUL byte: ${JSON.stringify(value)}`);
    for (const segment of value.split('.')) {
      if (PROTOTYPE_NAMES.has(segment)) {
        this.fail(
          option,
          `must not use the field name "${segment}", which names a JavaScript prototype: ${JSON.stringify(value)}`,
        );
      }
    }
    return value;
  }

  /** A path the primitive writes: as `path`, and never `_id` (immutable) or inside it. */
  writablePath(value: unknown, option: string): string {
    const path = this.path(value, option);
    if (path === '_id' || path.startsWith('_id.'))
      this.fail(option, 'must not be _id, which MongoDB does not let an update change');
    return path;
  }

  /** A single field name (no dots, no `$`, none of `safeSegments`), e.g. a key of `match` or `inc`. */
  fieldName(value: string, option: string): string {
    if (value.length === 0 || value.includes('.') || value.startsWith('$')) {
      this.fail(option, 'must be a plain field name (no ".", no leading "$")');
    }
    if (value.length > MAX_NAME_LENGTH)
      this.fail(option, `must be at most ${MAX_NAME_LENGTH} characters, got ${value.length}`);
    return this.safeSegments(value, option);
  }

  /** An identity or a state: see `isScalar`; a string of at most MAX_NAME_LENGTH characters. */
  scalar(value: unknown, option: string): unknown {
    if (typeof value === 'string' && value.length > MAX_NAME_LENGTH) {
      this.fail(option, `must be at most ${MAX_NAME_LENGTH} characters, got ${value.length}`);
    }
    if (!isScalar(value)) {
      this.fail(
        option,
        `must be a string, finite number, boolean, Date, ObjectId, Decimal128, Long or UUID/Binary (finite, built with the driver's classes), got ${describe(value)}`,
      );
    }
    return value;
  }

  /** A finite number strictly greater than zero. */
  positiveNumber(value: unknown, option: string): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      return this.fail(option, `must be a finite number greater than 0, got ${describe(value)}`);
    }
    return value;
  }

  finiteNumber(value: unknown, option: string): number {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      return this.fail(option, `must be a finite number, got ${describe(value)}`);
    }
    return value;
  }

  /** A whole number ≥ `min`. */
  integer(value: unknown, option: string, min: number): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      return this.fail(option, `must be a whole number ≥ ${min}, got ${describe(value)}`);
    }
    return value;
  }

  boolean(value: unknown, option: string): boolean {
    if (typeof value !== 'boolean')
      return this.fail(option, `must be true or false, got ${describe(value)}`);
    return value;
  }

  function<F>(value: F, option: string): F {
    if (typeof value !== 'function')
      this.fail(option, `must be a function, got ${describe(value)}`);
    return value;
  }

  /** Rejects keys of `options` that the primitive does not know (catches typos like `amout`). */
  knownKeys(options: object, known: readonly string[], parent?: string): void {
    for (const key of Object.keys(options)) {
      if (known.includes(key)) continue;
      const where = parent === undefined ? `an option of ${this.primitive}` : `a key of ${parent}`;
      this.fail(
        parent === undefined ? key : `${parent}.${key}`,
        `is not ${where} (known: ${known.join(', ')})`,
      );
    }
  }
}

/** The validation helpers of `primitive` (see Validator). */
export function validator(primitive: string): Validator {
  return new Validator(primitive);
}
