/**
 * The offline MongoDB-wire-compatible test server. See ../README.md for what it implements
 * and where it differs from mongod.
 */

export type { OfflineServer, OfflineServerOptions } from './server.js';
export { startOfflineServer } from './server.js';
