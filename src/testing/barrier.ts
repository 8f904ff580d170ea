/**
 * A one-shot barrier: the tool that turns "concurrent" into "the worst interleaving, every run".
 */
import { fail, positiveInteger } from './validate.js';

/**
 * A barrier for a fixed number of parties. Calling it arrives and resolves once every party
 * has arrived (or left). It opens once: later calls resolve at once.
 *
 * @example Every read before any write, so a read-then-write loses updates on every run:
 * ```ts
 * const allRead = barrier(50);
 * await Promise.all(clients.map(async (client) => {
 *   const doc = await coll(client).findOne({ _id: 'counter' });
 *   await allRead();
 *   await coll(client).updateOne({ _id: 'counter' }, { $set: { n: doc!.n + 1 } });
 * }));
 * ```
 */
export interface Barrier {
  /** Arrives and waits until all parties have arrived or left. */
  (): Promise<void>;
  /** How many arrivals open the barrier (the initial count minus the parties that left). */
  readonly parties: number;
  /** How many parties have arrived so far. */
  readonly arrived: number;
  /** Whether the barrier has opened. */
  readonly isOpen: boolean;
  /**
   * Withdraws one party that will never arrive (it failed or finished early), so the others
   * are not left waiting forever. Opens the barrier if everyone still expected has arrived.
   */
  leave(): void;
}

/**
 * Creates a {@link Barrier} for `parties` callers.
 *
 * A barrier only orders what happens in this process: whether the operations released
 * together really interleave at the server depends on their connections (see
 * {@link raceClients}).
 *
 * @example
 * ```ts
 * const bothRead = barrier(2);
 * const transfer = async (amount: number) => {
 *   const account = (await accounts.findOne({ _id: 'a1' }))!;
 *   await bothRead(); // neither writes before both have read: the lost update shows every run
 *   await accounts.updateOne({ _id: 'a1' }, { $set: { balance: account.balance - amount } });
 * };
 * await Promise.all([transfer(30), transfer(50)]);
 * ```
 *
 * @param parties - How many arrivals open it; a positive integer.
 * @throws InvalidArgumentError (option `parties`) when `parties` is not a positive integer.
 */
export function barrier(parties: number): Barrier {
  positiveInteger('barrier', 'parties', parties);
  let expected = parties;
  let arrived = 0;
  let isOpen = false;
  let release: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    release = resolve;
  });
  const openIfComplete = () => {
    if (!isOpen && arrived >= expected) {
      isOpen = true;
      release();
    }
  };
  const arrive = (): Promise<void> => {
    if (!isOpen) {
      arrived += 1;
      openIfComplete();
    }
    return opened;
  };
  return Object.defineProperties(arrive, {
    parties: { get: () => expected, enumerable: true },
    arrived: { get: () => arrived, enumerable: true },
    isOpen: { get: () => isOpen, enumerable: true },
    leave: {
      enumerable: true,
      value: () => {
        if (isOpen) return;
        if (expected - arrived <= 0)
          fail('barrier', 'leave', 'called with no party left to wait for');
        expected -= 1;
        openIfComplete();
      },
    },
  }) as Barrier;
}
