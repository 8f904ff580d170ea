/**
 * The interleaved-rounds runner used by every round-trip, concurrency and contention case
 * (sections 3–5). A benchmark library times one task after the other, so a slow patch of the
 * machine (another process, a GC, the server compacting) lands on one variant only. Here each
 * round runs every variant once, back to back, and the comparison is made WITHIN the round:
 * the per-round ratio B/A. The report gives the median of those ratios and their spread (IQR
 * and min–max), never an absolute time as the result.
 *
 * The order of the variants alternates from round to round (A,B then B,A), so neither always
 * runs first on a warm cache or last after the other has filled the server's memory.
 */
import { type Spread, spread } from './stats.js';

/** What one run of a variant did; the runner adds the wall time. */
export interface RunResult {
  /** Operations (requests, commits, calls) completed in this run. */
  readonly ops: number;
  /** Per-operation latencies in ms, when the case reports percentiles. */
  readonly latencies?: readonly number[];
  /** Case-specific counts (attempts, oversells, commands…), summed or compared by the case. */
  readonly extras?: Readonly<Record<string, number>>;
}

export interface Sample extends RunResult {
  /** Wall time of the run in ms (prepare excluded). */
  readonly ms: number;
}

export interface Variant {
  readonly name: string;
  /** Untimed, before every run (warm-up runs included): reset the documents the run uses. */
  readonly prepare?: () => Promise<void>;
  readonly run: () => Promise<RunResult>;
}

export interface InterleaveOptions {
  /** Measured rounds. */
  readonly rounds: number;
  /** Rounds run first and thrown away (connection pools, JIT, the server's caches). */
  readonly warmupRounds: number;
}

/** Samples per variant, in the order the variants were given: `result[v][round]`. */
export async function interleave(
  variants: readonly Variant[],
  options: InterleaveOptions,
): Promise<Sample[][]> {
  const samples: Sample[][] = variants.map(() => []);
  for (let round = 0; round < options.warmupRounds + options.rounds; round += 1) {
    const order = variants.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const index of order) {
      const variant = variants[index] as Variant;
      await variant.prepare?.();
      const started = performance.now();
      const result = await variant.run();
      const ms = performance.now() - started;
      if (round >= options.warmupRounds) (samples[index] as Sample[]).push({ ...result, ms });
    }
  }
  return samples;
}

/** Operations per second of one sample. */
export const rate = (s: Sample): number => (s.ops / s.ms) * 1000;

/** Time per operation in ms of one sample. */
export const perOp = (s: Sample): number => s.ms / s.ops;

/**
 * Per-round ratios `metric(b) / metric(a)` and their spread; rounds pair up by index, which is
 * what the interleaving makes meaningful.
 */
export function ratio(
  a: readonly Sample[],
  b: readonly Sample[],
  metric: (s: Sample) => number,
): Spread {
  return spread(a.map((sa, i) => metric(b[i] as Sample) / metric(sa)));
}

/** The spread of one metric over the rounds of one variant. */
export function over(samples: readonly Sample[], metric: (s: Sample) => number): Spread {
  return spread(samples.map(metric));
}

/**
 * Runs `total` operations on `clients` concurrent workers (each awaits its previous operation,
 * as a request handler does) and returns every latency. `op(i)` gets the operation's index.
 */
export async function concurrently(
  clients: number,
  total: number,
  op: (i: number, worker: number) => Promise<unknown>,
): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, worker) => {
      while (next < total) {
        const i = next;
        next += 1;
        const t = performance.now();
        await op(i, worker);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}
