/**
 * `npm run example -- <name>`: starts one example app (`examples/<name>/main.ts`), e.g.
 * `npm run example -- carts`. `PORT` picks the port (3000 by default), `MONGODB_URI` the MongoDB.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const here = import.meta.dirname;
const available = readdirSync(here, { withFileTypes: true }).flatMap((entry) => {
  // `demo` has its own script (`npm run demo`); `shared` is the examples' plumbing.
  if (!entry.isDirectory() || entry.name === 'demo' || entry.name === 'shared') return [];
  const names = existsSync(join(here, entry.name, 'main.ts')) ? [entry.name] : [];
  // Variants live in a subfolder with their own main.ts (e.g. inventory/mongoose).
  for (const sub of readdirSync(join(here, entry.name), { withFileTypes: true })) {
    if (sub.isDirectory() && existsSync(join(here, entry.name, sub.name, 'main.ts'))) {
      names.push(`${entry.name}/${sub.name}`);
    }
  }
  return names;
});

const name = process.argv[2];
if (name === undefined || !available.includes(name)) {
  console.error(
    `usage: npm run example -- <name>\n${name === undefined ? '' : `unknown example "${name}"; `}available: ${available.sort().join(', ')}`,
  );
  process.exit(2);
}
await import(`./${name}/main.ts`);
