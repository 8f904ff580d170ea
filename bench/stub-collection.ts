/**
 * A stub collection for the CPU-per-call benchmarks (section 2): the library's own cost, with
 * the server and the driver's wire work taken out.
 *
 * The replies must be exactly what the driver returns (the primitives read their outcome from
 * the shape of `findOneAndUpdate`'s reply, a `bulkWrite` result, an E11000 error object…), so
 * they are not written by hand: `record` runs the call once through the real driver with a
 * recording wrapper around the collection, keeping every method called, its arguments and what
 * it resolved to or threw. The `StubCollection` then replays that script: each method call
 * gets the next recorded reply (the very object the driver produced), and a call that does not
 * follow the script throws, so a primitive that took another path than the one recorded is
 * caught instead of being timed on the wrong replies.
 *
 * The baseline of each CPU case calls the stub's methods directly with the recorded
 * arguments: the difference is what the primitive itself costs (validation, building the
 * command, reading the outcome).
 */
import type { Collection } from 'mongodb';
import type { AnyDoc } from './context.js';

/** The Collection methods the primitives call. */
const METHODS = [
  'findOneAndUpdate',
  'findOne',
  'updateOne',
  'bulkWrite',
  'insertOne',
  'deleteOne',
  'aggregate',
] as const;
type Method = (typeof METHODS)[number];

export interface ScriptStep {
  readonly method: Method;
  readonly args: readonly unknown[];
  readonly outcome: { readonly value: unknown } | { readonly error: unknown };
}

/**
 * Runs `call` with a wrapper of `collection` that records every method call and its reply.
 * Other properties (`collectionName`, `dbName`, the client the ownership checks read) pass
 * through unchanged.
 */
export async function record(
  collection: Collection<AnyDoc>,
  call: (recording: Collection<AnyDoc>) => Promise<unknown>,
): Promise<ScriptStep[]> {
  const script: ScriptStep[] = [];
  const recording = new Proxy(collection, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof property !== 'string' || !(METHODS as readonly string[]).includes(property))
        return value;
      return async (...args: unknown[]) => {
        if (property === 'aggregate') throw new Error('stub collection: aggregate is not scripted');
        try {
          const reply = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          script.push({ method: property as Method, args, outcome: { value: reply } });
          return reply;
        } catch (error) {
          script.push({ method: property as Method, args, outcome: { error } });
          throw error;
        }
      };
    },
  });
  await call(recording);
  return script;
}

/**
 * Replays a recorded script, cyclically: the primitive's k-th collection call gets step k; after
 * the last step the script starts over for the next call of the primitive.
 */
export class StubCollection {
  readonly collectionName: string;
  readonly dbName: string;
  readonly namespace: string;
  private next = 0;

  constructor(
    collectionName: string,
    dbName: string,
    private readonly script: readonly ScriptStep[],
  ) {
    if (script.length === 0) throw new Error('stub collection: an empty script');
    this.collectionName = collectionName;
    this.dbName = dbName;
    this.namespace = `${dbName}.${collectionName}`;
  }

  /** True when the replay stands at the start of the script (every call consumed whole). */
  get aligned(): boolean {
    return this.next === 0;
  }

  private reply(method: Method): Promise<unknown> {
    const step = this.script[this.next] as ScriptStep;
    if (step.method !== method) {
      throw new Error(
        `stub collection: expected ${step.method} (step ${this.next}), got ${method}`,
      );
    }
    this.next = (this.next + 1) % this.script.length;
    return 'error' in step.outcome
      ? Promise.reject(step.outcome.error)
      : Promise.resolve(step.outcome.value);
  }

  findOneAndUpdate(..._args: unknown[]): Promise<unknown> {
    return this.reply('findOneAndUpdate');
  }
  findOne(..._args: unknown[]): Promise<unknown> {
    return this.reply('findOne');
  }
  updateOne(..._args: unknown[]): Promise<unknown> {
    return this.reply('updateOne');
  }
  bulkWrite(..._args: unknown[]): Promise<unknown> {
    return this.reply('bulkWrite');
  }
  insertOne(..._args: unknown[]): Promise<unknown> {
    return this.reply('insertOne');
  }
  deleteOne(..._args: unknown[]): Promise<unknown> {
    return this.reply('deleteOne');
  }

  /** The baseline: the same calls, same arguments, straight to the stub. */
  async direct(): Promise<void> {
    for (const step of this.script) {
      const method = this[step.method as Exclude<Method, 'aggregate'>] as (
        ...a: unknown[]
      ) => Promise<unknown>;
      await method.apply(this, step.args as unknown[]).catch(() => undefined);
    }
  }

  /** Typed as the driver's Collection, which is what the primitives take. */
  asCollection(): Collection<AnyDoc> {
    return this as unknown as Collection<AnyDoc>;
  }
}

/**
 * A stub client and session for the transaction runner: `startSession` hands out a session whose
 * transaction methods do nothing but keep the state the runner reads (`inTransaction`).
 */
export class StubSession {
  private active = false;
  readonly hasEnded = false;
  startTransaction(): void {
    this.active = true;
  }
  inTransaction(): boolean {
    return this.active;
  }
  async commitTransaction(): Promise<void> {
    this.active = false;
  }
  async abortTransaction(): Promise<void> {
    this.active = false;
  }
  async endSession(): Promise<void> {}
}

export class StubClient {
  startSession(): StubSession {
    return new StubSession();
  }
}
