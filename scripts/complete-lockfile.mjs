/**
 * Adds lock entries for platform-specific optional dependencies that the lockfile lacks.
 *
 * Why: the npm registry reachable from this project's machines serves only the Linux builds of
 * packages such as @biomejs/cli-* and @rollup/rollup-*, so `npm install` cannot record the other
 * platforms' entries, and `npm ci` then refuses the lockfile ("Missing: … from lock file").
 * An entry marked optional lets `npm ci` accept the lockfile; on a platform where the package
 * cannot be fetched it is skipped like any failed optional dependency.
 *
 * Run after any `npm install` that rewrites package-lock.json: `node scripts/complete-lockfile.mjs`.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
let added = 0;
for (const [location, entry] of Object.entries(packages)) {
  if (location === '' || entry.optionalDependencies === undefined) continue;
  for (const [name, version] of Object.entries(entry.optionalDependencies)) {
    const nested = `${location}/node_modules/${name}`;
    const hoisted = `node_modules/${name}`;
    if (nested in packages || hoisted in packages) continue;
    packages[hoisted] = { version, ...(entry.dev ? { dev: true } : {}), optional: true };
    added += 1;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: added ${added} optional platform entries`);
