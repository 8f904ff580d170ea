/**
 * `assertInvariant`: check the database after a storm and fail with every violation listed.
 */
import { MongoAtomicsError } from '../errors.js';
import { callable, fail, nonEmptyString } from './validate.js';

/** What an invariant check returns: one line per violation; empty when the invariant holds. */
export type Violations = readonly string[];

/** An invariant did not hold. The message lists every violation. */
export class InvariantViolationError extends MongoAtomicsError {
  override readonly name = 'InvariantViolationError';
  /** The invariant's name, as given to {@link assertInvariant}. */
  readonly invariant: string;
  /** What the check reported, one line per violation. */
  readonly violations: Violations;

  constructor(invariant: string, violations: Violations) {
    super(
      `invariant "${invariant}" violated (${violations.length}):\n${violations.map((v) => `  - ${v}`).join('\n')}`,
    );
    this.invariant = invariant;
    this.violations = violations;
  }
}

/**
 * Runs a check and returns its violations, after making sure it returned an array of strings
 * (a check that returns `undefined` or `true` would otherwise pass by accident).
 *
 * @internal
 */
export async function violationsOf(helper: string, check: () => unknown): Promise<Violations> {
  const violations = await check();
  if (!Array.isArray(violations) || violations.some((v) => typeof v !== 'string')) {
    fail(
      helper,
      'check',
      'must return (or resolve to) an array of violation messages, [] when it holds',
    );
  }
  return Object.freeze([...violations]);
}

/**
 * Runs `check` (typically reads the documents a storm wrote and compares them with what the
 * calls reported) and throws an {@link InvariantViolationError} listing every violation it
 * returns. A plain `Error`, not a test-runner assertion: works under any runner.
 *
 * @example
 * ```ts
 * await assertInvariant('stock = 20 − units sold, never below 0', async () => {
 *   const { stock } = (await products.findOne({ _id: 'p1' }))!;
 *   const sold = report.count('decremented');
 *   return stock === 20 - sold && stock >= 0 ? [] : [`stock ${stock} after ${sold} sales`];
 * });
 * ```
 *
 * @param invariant - A name for the invariant, quoted in the error.
 * @param check - Returns the violations, one message each; `[]` when the invariant holds.
 * @throws InvariantViolationError when `check` returns violations.
 * @throws InvalidArgumentError when `check` returns anything but an array of strings.
 */
export async function assertInvariant(
  invariant: string,
  check: () => Violations | Promise<Violations>,
): Promise<void> {
  nonEmptyString('assertInvariant', 'invariant', invariant);
  callable('assertInvariant', 'check', check);
  const violations = await violationsOf('assertInvariant', check);
  if (violations.length > 0) throw new InvariantViolationError(invariant, violations);
}
