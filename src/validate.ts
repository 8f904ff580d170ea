/**
 * Argument validation shared by every primitive. Each check throws InvalidArgumentError naming
 * the primitive and the option, before any command is sent.
 *
 * Driver objects are recognised by shape, not `instanceof`, so that an application with two
 * copies of the driver (or a Mongoose connection's underlying driver) still works.
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

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'an invalid Date' : 'a Date';
  const bsonType = (value as { _bsontype?: unknown } | undefined)?._bsontype;
  if (typeof bsonType === 'string') return `a ${bsonType}`;
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
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
      const bsonType = (value as { _bsontype?: unknown } | null)?._bsontype;
      return typeof bsonType === 'string' && SCALAR_BSON_TYPES.has(bsonType);
    }
    default:
      return false;
  }
}

/** Validation helpers bound to one primitive's name, for its error messages. */
export function validator(primitive: string) {
  const fail = (option: string, problem: string): never => {
    throw new InvalidArgumentError(primitive, option, problem);
  };

  return {
    fail,

    options<T>(value: T): NonNullable<T> {
      if (!isPlainObject(value)) fail('options', `must be an object, got ${describe(value)}`);
      return value as NonNullable<T>;
    },

    collection<T extends Document>(value: Collection<T>, option = 'collection'): Collection<T> {
      const candidate = value as Partial<Collection<T>> | null | undefined;
      if (
        typeof candidate !== 'object' ||
        candidate === null ||
        typeof candidate.collectionName !== 'string' ||
        typeof candidate.findOneAndUpdate !== 'function'
      ) {
        fail(option, `must be a driver Collection (db.collection(name)), got ${describe(value)}`);
      }
      return value;
    },

    client(value: MongoClient | undefined, option = 'client'): MongoClient {
      const candidate = value as Partial<MongoClient> | null | undefined;
      if (
        typeof candidate !== 'object' ||
        candidate === null ||
        typeof candidate.startSession !== 'function'
      ) {
        fail(option, `must be a connected MongoClient, got ${describe(value)}`);
      }
      return value as MongoClient;
    },

    session(value: ClientSession | undefined, option = 'session'): ClientSession | undefined {
      if (value === undefined) return undefined;
      const candidate = value as Partial<ClientSession> | null;
      if (
        typeof candidate !== 'object' ||
        candidate === null ||
        typeof candidate.inTransaction !== 'function' ||
        typeof candidate.endSession !== 'function'
      ) {
        fail(option, `must be a ClientSession (client.startSession()), got ${describe(value)}`);
      }
      if (value.hasEnded) fail(option, 'is a session that has already ended');
      return value;
    },

    /** A query filter: a plain object, not empty (it selects the document to change). */
    filter(value: unknown, option = 'filter'): Document {
      if (!isPlainObject(value)) {
        return fail(option, `must be a query filter object, got ${describe(value)}`);
      }
      if (Object.keys(value).length === 0) {
        fail(option, 'must not be empty: it selects the document to change');
      }
      return value;
    },

    /** A plain object of fields (possibly empty). */
    fields(value: unknown, option: string): Record<string, unknown> {
      if (!isPlainObject(value)) {
        return fail(option, `must be an object of fields, got ${describe(value)}`);
      }
      return value;
    },

    /** A dotted field path such as `'stock'` or `'data.cart'`: no `$`, no empty segment. */
    path(value: unknown, option: string): string {
      if (typeof value !== 'string' || value.length === 0) {
        return fail(option, `must be a non-empty field path string, got ${describe(value)}`);
      }
      for (const segment of value.split('.')) {
        if (segment.length === 0) fail(option, `has an empty segment: ${JSON.stringify(value)}`);
        if (segment.startsWith('$'))
          fail(
            option,
            `must not contain operators or positional segments: ${JSON.stringify(value)}`,
          );
      }
      return value;
    },

    /** A path the primitive writes: as `path`, and never `_id` (immutable) or inside it. */
    writablePath(value: unknown, option: string): string {
      const path = this.path(value, option);
      if (path === '_id' || path.startsWith('_id.'))
        fail(option, 'must not be _id, which MongoDB does not let an update change');
      return path;
    },

    /** A single field name (no dots, no `$`), e.g. a key of `match` or `inc`. */
    fieldName(value: string, option: string): string {
      if (
        value.length === 0 ||
        value.includes('.') ||
        value.startsWith('$') ||
        value.includes('\0')
      ) {
        fail(option, 'must be a plain field name (no ".", no leading "$")');
      }
      return value;
    },

    scalar(value: unknown, option: string): unknown {
      if (!isScalar(value)) {
        fail(
          option,
          `must be a string, finite number, boolean, Date, ObjectId, Decimal128, Long or UUID/Binary, got ${describe(value)}`,
        );
      }
      return value;
    },

    /** A finite number strictly greater than zero. */
    positiveNumber(value: unknown, option: string): number {
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
        return fail(option, `must be a finite number greater than 0, got ${describe(value)}`);
      }
      return value;
    },

    finiteNumber(value: unknown, option: string): number {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        return fail(option, `must be a finite number, got ${describe(value)}`);
      }
      return value;
    },

    /** A whole number ≥ `min`. */
    integer(value: unknown, option: string, min: number): number {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
        return fail(option, `must be a whole number ≥ ${min}, got ${describe(value)}`);
      }
      return value;
    },

    boolean(value: unknown, option: string): boolean {
      if (typeof value !== 'boolean')
        return fail(option, `must be true or false, got ${describe(value)}`);
      return value;
    },

    function<F>(value: F, option: string): F {
      if (typeof value !== 'function') fail(option, `must be a function, got ${describe(value)}`);
      return value;
    },

    /** Rejects keys of `options` that the primitive does not know (catches typos like `amout`). */
    knownKeys(options: object, known: readonly string[], parent?: string): void {
      for (const key of Object.keys(options)) {
        if (known.includes(key)) continue;
        const where = parent === undefined ? `an option of ${primitive}` : `a key of ${parent}`;
        fail(
          parent === undefined ? key : `${parent}.${key}`,
          `is not ${where} (known: ${known.join(', ')})`,
        );
      }
    },
  };
}

export type Validator = ReturnType<typeof validator>;
