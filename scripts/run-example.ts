/**
 * `npm run example -- <name>` and `npm run demo`: runs `examples/<name>/main.ts` (or the demo)
 * on a MongoDB chosen the way the test suite chooses: `MONGODB_URI` when it is set, else a real
 * mongod from mongodb-memory-server (downloaded on first use), else the repository's offline
 * MongoDB-compatible test server.
 *
 * The example runs in a child process with `MONGODB_URI` set, exactly as you would run it in
 * your own project (`MONGODB_URI=… npx tsx examples/carts/main.ts`); this script only provides
 * the embedded server and stops it after the example has exited. Ctrl-C reaches the example
 * (the terminal signals the whole process group); this process waits for it to finish.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startEmbeddedMongo } from '../offline-server/src/embedded.js';

const examples = resolve(import.meta.dirname, '../examples');

/** `carts`, `inventory`, `inventory/mongoose`, …: every folder with a `main.ts`, one level of variants. */
function available(): string[] {
  const names: string[] = [];
  for (const entry of readdirSync(examples, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name === 'demo' || entry.name === 'shared') continue;
    if (existsSync(join(examples, entry.name, 'main.ts'))) names.push(entry.name);
    for (const sub of readdirSync(join(examples, entry.name), { withFileTypes: true })) {
      if (sub.isDirectory() && existsSync(join(examples, entry.name, sub.name, 'main.ts'))) {
        names.push(`${entry.name}/${sub.name}`);
      }
    }
  }
  return names.sort();
}

const name = process.argv[2];
const names = [...available(), 'demo'];
if (name === undefined || !names.includes(name)) {
  console.error(
    `usage: npm run example -- <name>\n${name === undefined ? '' : `unknown example "${name}"; `}available: ${available().join(', ')}`,
  );
  process.exit(2);
}

let uri = process.env.MONGODB_URI;
let description = 'MONGODB_URI';
let stop = async () => {};
if (uri === undefined || uri === '') {
  const notes: string[] = [];
  const mongo = await startEmbeddedMongo(notes);
  for (const note of notes) console.log(`note: ${note}`);
  ({ uri, description } = mongo);
  stop = () => mongo.stop();
}
console.log(`MongoDB: ${description}`);

// Ctrl-C is for the example, which shuts itself down; this process outlives it to stop the
// embedded server.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
const child = spawn(process.execPath, ['--import', 'tsx', join(examples, name, 'main.ts')], {
  env: { ...process.env, MONGODB_URI: uri },
  stdio: 'inherit',
});
const code = await new Promise<number>((done) =>
  child.once('exit', (exitCode, signal) => done(exitCode ?? (signal === null ? 1 : 130))),
);
await stop();
process.exit(code);
