/**
 * A stand-in for a collection created with a case-insensitive default collation
 * (`{ locale: 'en', strength: 2 }`), which the offline server cannot imitate (its README: no
 * collation). mongod compares strings under the collection's collation in query filters and in
 * aggregation expressions alike, and returns stored values unchanged. This stub reproduces that
 * for ASCII data by evaluating every filter and every projection expression with the offline
 * server's own evaluator on case-folded copies (documents and the operation's literals), while
 * the values it returns are the stored ones: the reply has the exact shape mongod sends.
 *
 * It serves the failure paths only: an update whose guard matches would have to be applied,
 * which this stub does not do; it throws instead, so a test can never pass on a write it skipped.
 */
import type { Collection, Document } from 'mongodb';
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

export interface CaseInsensitiveCollection<T extends Document> {
  readonly collection: Collection<T>;
  /** The commands the primitive sent, by name. */
  readonly calls: string[];
}

export function caseInsensitiveCollection<T extends Document>(
  docs: readonly T[],
): CaseInsensitiveCollection<T> {
  const calls: string[] = [];
  const matching = (filter: Document) => {
    const test = compileFilter(fold(filter) as Document);
    return docs.find((doc) => test(fold(doc) as Document));
  };
  const stub = {
    collectionName: 'case_insensitive',
    async findOneAndUpdate(filter: Document) {
      calls.push('findAndModify');
      if (matching(filter) !== undefined) {
        throw new Error('case-insensitive stub: the guard matched; this stub serves refusals only');
      }
      return null;
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
  return { collection: stub as unknown as Collection<T>, calls };
}
