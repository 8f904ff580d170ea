#!/usr/bin/env node
/**
 * `prepublishOnly`: refuses to publish a README whose relative links would be dead on npm.
 *
 * npm's package page resolves a relative link (`docs/guides/x.md`) only by rewriting it against
 * the `repository` field; without one the link points into npmjs.com and is dead. Until the
 * package has a public repository, publishing with relative README links is refused
 * (CONTRIBUTING.md, "Links").
 */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const relative = [...readme.matchAll(/\]\(([^)\s]+)\)/g)]
  .map((match) => match[1])
  .filter((target) => !/^(https?:|mailto:|#)/.test(target));

if (pkg.repository === undefined && relative.length > 0) {
  console.error(
    `README.md has ${relative.length} relative links (${relative.slice(0, 3).join(', ')}, …) and ` +
      'package.json has no "repository": they would be dead on the npm page. Set "repository" ' +
      '(and "homepage", "bugs") once the repository is public: CONTRIBUTING.md, "Links".',
  );
  process.exit(1);
}
