/**
 * Commands the driver sends for its own bookkeeping (handshake, monitoring, session cleanup,
 * authentication): never counted as round trips, by the tests (mongo.ts) and by the benchmark
 * suite (bench/context.ts) alike. No vitest import here, so the bench can use it.
 */
export const HOUSEKEEPING: ReadonlySet<string> = new Set([
  'hello',
  'ismaster',
  'isMaster',
  'ping',
  'endSessions',
  'saslStart',
  'saslContinue',
  'buildInfo',
  'buildinfo',
]);
