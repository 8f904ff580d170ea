/**
 * A stand-in for a collection created with a case-insensitive default collation
 * (`{ locale: 'en', strength: 2 }`), which the offline server cannot imitate (its README: no
 * collation). mongod compares strings under the collection's collation in query filters and in
 * aggregation expressions alike, and returns stored values unchanged. This stub reproduces that
 * for ASCII data by evaluating every filter and every projection expression with the offline
 * server's own evaluator on case-folded copies (documents and the operation's literals), while
 * the values it returns are the stored ones: the reply has the exact shape mongod sends.
 *
 * It serves the failure paths (a guarded update that matches nothing, or a pipeline update
 * that puts the document back as it is, a no-op, answered with its projected before-image),
 * and the answer to a RETRIED findAndModify: an update whose
 * guard matches would have to be applied, which this stub does not do; it throws instead, so a
 * test can never pass on a write it skipped. Given `retriedImage`, `findOneAndUpdate` answers
 * as mongod answers a findAndModify that the driver retried after the first execution applied
 * (write_ops_retryability.cpp, SERVER-44151): the stored before-image, unprojected, with
 * `lastErrorObject: { n: 1, updatedExisting: true }`; `docs` then hold the document as that
 * first execution left it. `aggregate` evaluates a pipeline as mongod does under the collation.
 */
import { BSON, type Collection, type Document } from 'mongodb';
import { runPipeline } from '../../offline-server/src/aggregate.js';
import { applyProjection, compileFilter } from '../../offline-server/src/query.js';
import { isPlainObject } from '../../offline-server/src/values.js';

/**
 * Lower-cases the strings a comparison would see. In `expression` mode (aggregation
 * expressions), a string starting with `$` is a field path or a variable, not a value, and is
 * kept; `$literal` operands and query values are always values. Keys are never changed.
 */
function fold(value: unknown, expression = false): unknown {
  if (typeof value === 'string') {
    return expression && value.startsWith('$') ? value : value.toLowerCase();
  }
  if (Array.isArray(value)) return value.map((inner) => fold(inner, expression));
  if (isPlainObject(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => {
        if (key === '$literal') return [key, fold(inner)];
        return [key, fold(inner, expression || key === '$expr')];
      }),
    );
  }
  return value;
}

/**
 * Collation changes comparisons, never values: each boolean of the folded evaluation is the
 * server's verdict; every other value comes from the evaluation on the stored document.
 */
function verdictsFrom(plain: unknown, folded: unknown): unknown {
  if (typeof folded === 'boolean') return folded;
  if (isPlainObject(plain) && isPlainObject(folded)) {
    return Object.fromEntries(
      Object.entries(plain).map(([key, inner]) => [key, verdictsFrom(inner, folded[key])]),
    );
  }
  return plain;
}

/** Every string in `value` (keys excluded), with `visit`. */
function eachString(value: unknown, visit: (text: string) => void): void {
  if (typeof value === 'string') visit(value);
  else if (Array.isArray(value)) for (const inner of value) eachString(inner, visit);
  else if (isPlainObject(value)) for (const inner of Object.values(value)) eachString(inner, visit);
}

/**
 * Turns the folded strings of a result back into the strings mongod returns. Under a
 * collation, mongod returns values as they are stored (or as the command spelled them): a
 * string that folds to `'c1'` is the stored `'C1'` when the data holds it, else the command's
 * own spelling. A fold shared by two spellings on the same side is ambiguous: the stub throws
 * rather than guess (keep the test data free of it).
 */
function unfolder(data: unknown, literals: unknown): (folded: unknown) => unknown {
  const spellings = (source: unknown) => {
    const found = new Map<string, Set<string>>();
    eachString(source, (text) => {
      const key = text.toLowerCase();
      found.set(key, (found.get(key) ?? new Set()).add(text));
    });
    return found;
  };
  const stored = spellings(data);
  const given = spellings(literals);
  const unfold = (value: unknown): unknown => {
    if (typeof value === 'string') {
      const candidates = stored.get(value) ?? given.get(value);
      if (candidates === undefined) return value;
      if (candidates.size > 1) {
        throw new Error(
          `case-insensitive stub: ${JSON.stringify([...candidates])} fold alike; cannot tell which mongod returns`,
        );
      }
      return [...candidates][0];
    }
    if (Array.isArray(value)) return value.map(unfold);
    if (isPlainObject(value)) {
      return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, unfold(inner)]));
    }
    return value;
  };
  return unfold;
}

/** A stage folded as mongod's collation sees it: `$match` holds query values, others expressions. */
function foldStage(stage: Document): Document {
  return Object.fromEntries(
    Object.entries(stage).map(([name, spec]) => [name, fold(spec, name !== '$match')]),
  );
}

export interface CaseInsensitiveOptions {
  /**
   * The before-image a retried findAndModify is answered with (its guard must match it, as it
   * did on the first execution); `docs` hold the document as that execution left it.
   */
  readonly retriedImage?: Document;
}

export interface CaseInsensitiveCollection<T extends Document> {
  readonly collection: Collection<T>;
  /** The commands the primitive sent, by name. */
  readonly calls: string[];
  /** The options each `aggregate` was called with (read preference, session). */
  readonly aggregateOptions: Document[];
}

/** As the driver hands a reply over: deserialised from BSON (own fields, BSON classes). */
const fromWire = <D extends Document>(doc: D): D => BSON.deserialize(BSON.serialize(doc)) as D;

export function caseInsensitiveCollection<T extends Document>(
  docs: readonly T[],
  options: CaseInsensitiveOptions = {},
): CaseInsensitiveCollection<T> {
  const calls: string[] = [];
  const aggregateOptions: Document[] = [];
  const matching = (filter: Document) => {
    const test = compileFilter(fold(filter) as Document);
    return docs.find((doc) => test(fold(doc) as Document));
  };
  const stub = {
    collectionName: 'case_insensitive',
    async findOneAndUpdate(
      filter: Document,
      update: unknown,
      {
        includeResultMetadata = false,
        projection,
      }: { includeResultMetadata?: boolean; projection?: Document } = {},
    ) {
      calls.push('findAndModify');
      if (Array.isArray(update) && options.retriedImage === undefined) {
        // A pipeline update that puts the document back as it is (a no-op on mongod), with
        // `new: false` and an expression projection: the before-image, projected under the
        // collation, strings spelled as stored. An update that would change the document
        // throws, as above: this stub serves refusals only.
        const doc = matching(filter);
        if (doc === undefined) return null;
        const folded = fold(doc) as Document;
        const [result] = runPipeline([folded], (update as Document[]).map(foldStage));
        if (
          !Buffer.from(BSON.serialize(result ?? {})).equals(Buffer.from(BSON.serialize(folded)))
        ) {
          throw new Error(
            'case-insensitive stub: the update would write; this stub serves refusals only',
          );
        }
        const projected = applyProjection(folded, fold(projection, true) as Document);
        const value = fromWire(unfolder(docs, projection)(projected) as Document);
        return includeResultMetadata
          ? { ok: 1, value, lastErrorObject: { n: 1, updatedExisting: true } }
          : value;
      }
      const image = options.retriedImage;
      if (image !== undefined) {
        if (!compileFilter(fold(filter) as Document)(fold(image) as Document)) {
          throw new Error('case-insensitive stub: the guard does not match the retried image');
        }
        const value = fromWire(image);
        return includeResultMetadata
          ? { ok: 1, value, lastErrorObject: { n: 1, updatedExisting: true } }
          : value;
      }
      if (matching(filter) !== undefined) {
        throw new Error('case-insensitive stub: the guard matched; this stub serves refusals only');
      }
      return null;
    },
    aggregate(pipeline: Document[], aggregateOptionsGiven: Document = {}) {
      calls.push('aggregate');
      aggregateOptions.push(aggregateOptionsGiven);
      // Evaluated on folded copies (comparisons under the collation), the strings then spelled
      // as stored, or as the pipeline gave them.
      const folded = runPipeline(
        docs.map((doc) => fold(doc) as Document),
        pipeline.map(foldStage),
      );
      const unfold = unfolder(
        [docs, pipeline.map((stage) => stage.$replaceWith ?? null)],
        pipeline,
      );
      const result = folded.map((doc) => fromWire(unfold(doc) as Document));
      return { toArray: async () => result };
    },
    async findOne(filter: Document, options: { projection?: Document } = {}) {
      calls.push('find');
      const doc = matching(filter);
      if (doc === undefined) return null;
      const plain = applyProjection(structuredClone(doc), options.projection);
      const folded = applyProjection(
        fold(doc) as Document,
        fold(options.projection, true) as Document,
      );
      return verdictsFrom(plain, folded);
    },
  };
  return { collection: stub as unknown as Collection<T>, calls, aggregateOptions };
}
