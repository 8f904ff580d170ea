/**
 * mongo-atomics: concurrency-safe MongoDB primitives.
 *
 * @packageDocumentation
 */
export const VERSION: string = '0.1.0';
