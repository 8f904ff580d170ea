/**
 * `npm run bench`: latency and throughput of basic commands against the backend the tests
 * would use (MONGODB_URI, else mongodb-memory-server, else the offline server). Later issues add
 * one benchmark per primitive. Numbers are printed, never asserted: speed targets live here,
 * not in timed tests.
 */
import { MongoClient } from 'mongodb';
import { startEmbeddedMongo } from '../offline-server/src/embedded.js';

interface Measurement {
  readonly name: string;
  readonly ops: number;
  readonly ms: number;
  readonly p50: number;
  readonly p99: number;
}

async function measure(
  name: string,
  ops: number,
  concurrency: number,
  op: (i: number) => Promise<unknown>,
): Promise<Measurement> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ops) {
        const i = next++;
        const t = performance.now();
        await op(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const ms = performance.now() - started;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { name, ops, ms, p50: at(0.5), p99: at(0.99) };
}

const notes: string[] = [];
const uri = process.env.MONGODB_URI;
const mongo = uri ? undefined : await startEmbeddedMongo(notes);
for (const note of notes) console.log(`note: ${note}`);
console.log(`MongoDB: ${mongo?.description ?? 'MONGODB_URI'}`);

const client = new MongoClient(uri ?? mongo!.uri, { maxPoolSize: 50 });
try {
  await client.connect();
  const db = client.db(`mongo_atomics_bench_${process.pid}`);
  const counters = db.collection<{ _id: number; n: number }>('counters');
  await counters.insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, n: 0 })));
  const results = [
    await measure('ping', 2000, 1, () => db.command({ ping: 1 })),
    await measure('insertOne', 2000, 10, () => db.collection('docs').insertOne({ at: new Date() })),
    await measure('findOne by _id', 2000, 10, (i) => counters.findOne({ _id: i % 100 })),
    await measure('updateOne $inc', 2000, 10, (i) =>
      counters.updateOne({ _id: i % 100 }, { $inc: { n: 1 } }),
    ),
    await measure('updateOne $inc (50 clients, 1 doc)', 2000, 50, () =>
      counters.updateOne({ _id: 0 }, { $inc: { n: 1 } }),
    ),
  ];
  console.table(
    results.map((r) => ({
      benchmark: r.name,
      ops: r.ops,
      'ops/s': Math.round((r.ops / r.ms) * 1000),
      'p50 ms': r.p50.toFixed(2),
      'p99 ms': r.p99.toFixed(2),
    })),
  );
  await db.dropDatabase();
} finally {
  await client.close();
  await mongo?.stop();
}
