/**
 * `npm run demo`: starts an embedded MongoDB (a real mongod through mongodb-memory-server when
 * one can be had, else the offline test server) and replays races from the seed documents,
 * each done naively and safely under the same concurrent load.
 */
import { MongoClient } from 'mongodb';
import { startEmbeddedMongo } from '../../offline-server/src/embedded.js';
import { Progress, table } from './progress.js';
import { scenarios } from './scenarios.js';

const notes: string[] = [];
const mongo = await startEmbeddedMongo(notes);
for (const note of notes) console.log(`note: ${note}`);
console.log(`MongoDB: ${mongo.description}\n`);

// One pool large enough that every concurrent request has its own connection, as 50
// separate web requests in 50 server processes would.
const client = new MongoClient(mongo.uri, { maxPoolSize: 100 });
const rows: string[][] = [];
let allSafeHeld = true;
try {
  await client.connect();
  const db = client.db(`mongo_atomics_demo_${process.pid}`);
  for (const scenario of scenarios) {
    console.log(`${scenario.title} (seed ${scenario.seed}); invariant: ${scenario.invariant}`);
    for (const [kind, approach] of [
      ['naive', scenario.naive],
      ['safe', scenario.safe],
    ] as const) {
      const progress = new Progress(`${kind}: ${approach.name}`, scenario.attempts);
      const started = performance.now();
      const result = await approach.run(db, scenario.attempts, () => progress.tick());
      const ms = Math.round(performance.now() - started);
      progress.finish(`${result.succeeded} succeeded, ${result.finalState} (${ms} ms)`);
      if (kind === 'safe' && !result.correct) allSafeHeld = false;
      rows.push([
        scenario.title,
        `${kind}: ${approach.name}`,
        String(scenario.attempts),
        String(result.succeeded),
        result.finalState,
        result.correct ? 'held' : 'BROKEN',
      ]);
    }
    console.log('');
  }
  await db.dropDatabase();
} finally {
  await client.close();
  await mongo.stop();
}

console.log(
  table(['scenario', 'approach', 'attempts', 'succeeded', 'final state', 'invariant'], rows),
);
if (!allSafeHeld) {
  console.log('\nA safe approach broke its invariant: this is a bug, please report it.');
  process.exitCode = 1;
}
