/**
 * Field paths typed from a collection's schema.
 *
 * Every primitive names fields by dotted path (`field`, `array`, `counter`, `inc` keys, …). With
 * a typed `Collection<T>`, these types list the paths of `T` that fit the option: a typo
 * (`'stok'`) or a path of the wrong kind (a string field as a counter) fails to compile, and the
 * error lists the paths that would fit. With an untyped schema (`Collection<Document>`, `any`,
 * or any schema with a string index signature, such as Mongoose's `Model.collection`) every
 * string is accepted, as the runtime validation is then the only check.
 *
 * How paths are computed: the schema's own string keys, then, for fields that hold an embedded
 * document, `key.subpath` recursively, at most {@link MaxPathDepth} segments deep (a deeper
 * path is accepted as `prefix.${string}`, so deep or recursive schemas stay cheap to check).
 * Paths never run through arrays (the primitives write whole arrays or the fields of embedded
 * documents, never elements by index), nor into BSON values (`ObjectId`, `Decimal128`, …),
 * `Date`, `RegExp` or binary data. A field typed `any` or `unknown` fits every kind, and any
 * path below it is accepted.
 *
 * Only the type layer lives here: at run time every path is still validated (non-empty
 * segments, no `$` prefix, no `__proto__`/`constructor`/`prototype`) by src/validate.ts.
 *
 * @module
 */
import type { Document } from 'mongodb';
import type { ScalarValue } from './validate.js';

/**
 * How many segments deep a path is listed (`a.b.c.d.e.f` is 6). Below that, any continuation of
 * a listed embedded document is accepted (`a.b.c.d.e.f.${string}`), so compile time stays flat
 * on deep or recursive schemas.
 */
export type MaxPathDepth = 6;

/** Depth counter: `Next[n]` is `n - 1`. */
type Next = [never, 0, 1, 2, 3, 4, 5, 6];

/** True for `any`. */
type IsAny<T> = 0 extends 1 & T ? true : false;

/**
 * True when the schema does not say which fields exist: `any`, or a type with a string index
 * signature (`Document`, `Record<string, unknown>`). Paths of such a schema are any string.
 */
export type IsUntypedSchema<TSchema> =
  IsAny<TSchema> extends true ? true : string extends keyof TSchema ? true : false;

/** Values the paths stop at: not embedded documents to descend into. */
type Leaf =
  | Date
  | RegExp
  | Uint8Array
  | ArrayBuffer
  | ReadonlyMap<unknown, unknown>
  | ReadonlySet<unknown>
  | ((...args: never) => unknown)
  | readonly unknown[]
  // Every BSON value class (ObjectId, Decimal128, Long, Binary, Timestamp, …) has a `_bsontype`.
  | { readonly _bsontype: string };

/** The numbers a counter may hold: JavaScript numbers and bigints, BSON Int32, Long, Double, Decimal128. */
export type NumericValue =
  | number
  | bigint
  | {
      /** The BSON numeric class's tag, as the `bson` package sets it on its instances. */
      readonly _bsontype: 'Int32' | 'Long' | 'Double' | 'Decimal128';
    };

/** Which fields a path may name. */
type Kind = 'numeric' | 'array' | 'scalar';

/** Does a field holding `V` (null and undefined aside) fit `K`? `V` is never `any`/`unknown` here. */
type Fits<V, K extends Kind> = [NonNullable<V>] extends [never]
  ? false
  : K extends 'numeric'
    ? [NonNullable<V>] extends [NumericValue]
      ? true
      : false
    : K extends 'array'
      ? [NonNullable<V>] extends [readonly unknown[]]
        ? true
        : false
      : [NonNullable<V>] extends [ScalarValue]
        ? true
        : false;

/** The paths of kind `K` below one key `P` whose value is `V`. */
type PathsAt<P extends string, V, K extends Kind, D> =
  IsAny<V> extends true
    ? P | `${P}.${string}`
    : unknown extends V
      ? P | `${P}.${string}`
      : (Fits<V, K> extends true ? P : never) | SubPaths<P, NonNullable<V>, K, D>;

/** `P.sub` for every path `sub` of kind `K` inside the embedded document(s) of `V`. */
type SubPaths<P extends string, V, K extends Kind, D> = V extends Leaf
  ? never
  : V extends object
    ? D extends 1
      ? `${P}.${string}`
      : IsUntypedSchema<V> extends true
        ? `${P}.${string}`
        : `${P}.${KnownPaths<V, K, Next[D & keyof Next]>}`
    : never;

/** The paths of kind `K` of a typed document `T`; `D` segments, this one included, are listed. */
type KnownPaths<T, K extends Kind, D> = {
  [P in keyof T & string]-?: PathsAt<P, T[P], K, D>;
}[keyof T & string];

/** Paths of kind `K` of `TSchema`; any string when the schema is untyped. */
type PathsOf<TSchema, K extends Kind> =
  IsUntypedSchema<TSchema> extends true
    ? string
    : {
        [P in keyof TSchema & string]-?: PathsAt<P, TSchema[P], K, MaxPathDepth>;
      }[keyof TSchema & string];

/**
 * Dotted paths of `TSchema` that hold a number (`number`, `bigint`, or a BSON Int32, Long,
 * Double or Decimal128; optional and nullable fields included), e.g. `'stock'` or
 * `'inventory.available'`. Any string when the schema is untyped.
 */
export type NumericPath<TSchema> = PathsOf<TSchema, 'numeric'>;

/**
 * Dotted paths of `TSchema` that hold an array (optional and nullable fields included), e.g.
 * `'registration_ids'` or `'booking.attendees'`. Any string when the schema is untyped.
 */
export type ArrayPath<TSchema> = PathsOf<TSchema, 'array'>;

/**
 * Dotted paths of `TSchema` that hold a scalar (a string, number, boolean, Date, ObjectId or
 * other BSON scalar, literal unions included), e.g. `'status'` or `'payment.state'`. Any string
 * when the schema is untyped.
 */
export type ScalarPath<TSchema> = PathsOf<TSchema, 'scalar'>;

/**
 * The type of a path option whose path is `TPath` (inferred from the call) and must be one of
 * `TAllowed`: `TPath` itself when it is one of them, else `TAllowed`, so a wrong literal fails
 * to compile with the list of the paths that fit (`Type '"stok"' is not assignable to type
 * '"stock" | "inventory.available"'. Did you mean '"stock"'?`). A path typed plain `string` (a
 * value not known at compile time, such as a property of an options object built without
 * `as const`) is accepted: like every path, it is still validated at run time.
 */
export type CheckedPath<TPath extends string, TAllowed extends string> = string extends TPath
  ? TPath
  : TPath extends TAllowed
    ? TPath
    : TAllowed;

/**
 * The type stored at `Path` in `TSchema` (optional segments unwrapped); `any` for an untyped
 * schema or a path it cannot follow.
 */
export type PathValue<TSchema, Path extends string> =
  IsUntypedSchema<TSchema> extends true
    ? // biome-ignore lint/suspicious/noExplicitAny: an untyped schema says nothing about the value
      any
    : Path extends keyof TSchema
      ? TSchema[Path]
      : Path extends `${infer Head}.${infer Rest}`
        ? Head extends keyof TSchema
          ? PathValue<NonNullable<TSchema[Head]>, Rest>
          : // biome-ignore lint/suspicious/noExplicitAny: beyond the listed depth, nothing is known
            any
        : // biome-ignore lint/suspicious/noExplicitAny: beyond the listed depth, nothing is known
          any;

/**
 * The values a scalar field at `Path` of `TSchema` may be set to or compared with: the field's
 * own type (null and undefined aside); any {@link ScalarValue} when the schema is untyped.
 */
export type ScalarAt<TSchema, Path extends string> =
  IsAny<PathValue<TSchema, Path>> extends true
    ? ScalarValue
    : unknown extends PathValue<TSchema, Path>
      ? ScalarValue
      : Extract<PathValue<TSchema, Path>, ScalarValue>;

/**
 * The element type of the array at `Path` of `TSchema`; `Document` when the schema is untyped
 * (or the array's elements are `any`).
 */
export type ArrayElementAt<TSchema, Path extends string> =
  IsAny<PathValue<TSchema, Path>> extends true
    ? Document
    : NonNullable<PathValue<TSchema, Path>> extends readonly (infer E)[]
      ? IsAny<E> extends true
        ? Document
        : E
      : Document;

/**
 * An object keyed by some of `Keys`, each holding a `V`: `Readonly<Record<string, V>>` when
 * `Keys` is `string` (an untyped schema).
 */
export type PathRecord<Keys extends string, V> = string extends Keys
  ? Readonly<Record<string, V>>
  : { readonly [Key in Keys]?: V };

/** Top-level field names of an element type `E` whose values are of kind `K` (any string when untyped). */
type FieldNamesOf<E, K extends Kind> = E extends unknown
  ? IsUntypedSchema<E> extends true
    ? string
    : E extends Leaf | string | number | boolean | bigint | null | undefined
      ? string
      : {
          [P in keyof E & string]-?: IsAny<E[P]> extends true
            ? P
            : unknown extends E[P]
              ? P
              : Fits<E[P], K> extends true
                ? P
                : never;
        }[keyof E & string]
  : never;

/**
 * Field names (not paths) of the element type `E` that hold a scalar: the keys an element's
 * identity (`match`) may use. Any string for an untyped element.
 */
export type ScalarFieldName<E> = FieldNamesOf<E, 'scalar'>;

/**
 * Field names (not paths) of the element type `E` that hold a number: the keys of an element's
 * counters (`inc`, `max`). Any string for an untyped element.
 */
export type NumericFieldName<E> = FieldNamesOf<E, 'numeric'>;
