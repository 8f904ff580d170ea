/**
 * `npm run demo`: one race from each seed document, each sent as concurrent HTTP requests to an
 * example app twice, once to its naive handler (the seed's code) and once to its real one, under
 * the same load. Prints a table; exits with 1 if any real handler broke its invariant.
 *
 * MongoDB: `MONGODB_URI`; `npm run demo` (scripts/run-example.ts) sets it, to an embedded
 * MongoDB when you have none.
 */
import { MongoClient } from 'mongodb';
import { Progress, table } from './progress.js';
import type { RunResult } from './scenario.js';
import { scenarios } from './scenarios.js';

const uri = process.env.MONGODB_URI;
if (uri === undefined || uri === '') {
  throw new Error('set MONGODB_URI, or run the demo with `npm run demo`');
}
console.log('');

/** "BROKEN: 37 succeeded; sold=37, registrations=37" */
const describe = (result: RunResult): string =>
  `${result.held ? 'held' : 'BROKEN'}: ${result.succeeded} succeeded; ${result.finalState}`;

// The apps get a pool large enough for every concurrent request to have its own connection, as
// the same requests spread over many server processes would.
const client = new MongoClient(uri, { maxPoolSize: 200 });
const rows: string[][] = [];
let allSafeHeld = true;
const started = performance.now();
try {
  await client.connect();
  const db = client.db(`mongo_atomics_demo_${process.pid}`);
  for (const scenario of scenarios) {
    console.log(`${scenario.title} (seed ${scenario.seed}); invariant: ${scenario.invariant}`);
    const results: Record<'naive' | 'safe', { result: RunResult; ms: number }> = {
      naive: { result: { succeeded: 0, finalState: '', held: false }, ms: 0 },
      safe: { result: { succeeded: 0, finalState: '', held: false }, ms: 0 },
    };
    for (const kind of ['naive', 'safe'] as const) {
      const progress = new Progress(kind, scenario.requests);
      const runStarted = performance.now();
      const result = await scenario.run(db, kind, () => progress.tick());
      const ms = Math.round(performance.now() - runStarted);
      progress.finish(`${describe(result)} (${ms} ms)`);
      results[kind] = { result, ms };
    }
    if (!results.safe.result.held) allSafeHeld = false;
    rows.push([
      `${scenario.title} (seed ${scenario.seed})`,
      String(scenario.requests),
      scenario.invariant,
      describe(results.naive.result),
      describe(results.safe.result),
      `${results.naive.ms} ms / ${results.safe.ms} ms`,
    ]);
    console.log('');
  }
  await db.dropDatabase();
} finally {
  await client.close();
}

console.log(
  table(['scenario', 'requests', 'invariant', 'naive', 'safe', 'time (naive / safe)'], rows),
);
console.log(`\n${scenarios.length} scenarios in ${Math.round(performance.now() - started)} ms`);
if (!allSafeHeld) {
  console.log('\nA real handler broke its invariant: this is a bug, please report it.');
  process.exitCode = 1;
}
