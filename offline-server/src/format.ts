/**
 * mongod's relaxed rendering of values in error messages, e.g. the E11000
 * `dup key: { email: "a@b.c" }` and the `{_id: 1}` in type-error messages.
 */
import { Binary, Decimal128, type Document, Long, ObjectId, Timestamp } from 'bson';

export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value instanceof ObjectId) return `ObjectId('${value.toHexString()}')`;
  if (value instanceof Date) return `new Date(${value.getTime()})`;
  if (value instanceof Long) return value.toString();
  if (value instanceof Decimal128) return `Decimal128("${value.toString()}")`;
  if (value instanceof Timestamp) return `Timestamp(${value.high}, ${value.low})`;
  if (value instanceof Binary)
    return `BinData(${value.sub_type}, ${Buffer.from(value.buffer).toString('hex').toUpperCase()})`;
  if (Array.isArray(value)) return `[ ${value.map(formatValue).join(', ')} ]`;
  if (typeof value === 'object') return formatKeyValue(value as Document);
  return String(value);
}

/** `{ a: 1, b: "x" }`; the empty document is `{}`. */
export function formatKeyValue(doc: Document): string {
  const entries = Object.entries(doc);
  if (entries.length === 0) return '{}';
  return `{ ${entries.map(([key, value]) => `${key}: ${formatValue(value)}`).join(', ')} }`;
}
