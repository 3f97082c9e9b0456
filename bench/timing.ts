/**
 * Time-bounded throughput measurement: repeat a step until enough time and iterations have passed.
 *
 * @module
 */

/** How long and how often to repeat each measurement. */
export interface TimingBudget {
  /** Minimum measured milliseconds. */
  readonly minMs: number;
  /** Minimum measured iterations. */
  readonly minIters: number;
  /** Untimed warm-up iterations (JIT, pipeline compilation). */
  readonly warmIters: number;
}

/**
 * Rows per second of `step` (which processes `rows` rows). `prepare` runs untimed before each
 * step (e.g. copying a batch the step will detach).
 */
export async function rowsPerSecond<T>(
  budget: TimingBudget,
  rows: number,
  prepare: () => T,
  step: (input: T) => Promise<unknown> | unknown,
): Promise<number> {
  for (let i = 0; i < budget.warmIters; i++) await step(prepare());
  let ms = 0;
  let iters = 0;
  while (ms < budget.minMs || iters < budget.minIters) {
    const input = prepare();
    const t0 = performance.now();
    await step(input);
    ms += performance.now() - t0;
    iters++;
  }
  return (rows * iters) / (ms / 1000);
}

/**
 * The rate of a run of `total` items over its last 80 %: the first fifth pays for JIT warm-up,
 * the first pulls and every key's initialisation, which a sustained rate is not about. Created
 * when the run starts; told the count done after each poll.
 */
export class SteadyRate {
  readonly #t0 = performance.now();
  #warmAt = 0;
  #warmCount = 0;
  constructor(readonly total: number) {}

  /** `count` items are done by now. */
  observe(count: number): void {
    if (this.#warmAt === 0 && count >= 0.2 * this.total && count < this.total) {
      this.#warmAt = performance.now();
      this.#warmCount = count;
    }
  }

  /** Seconds from the start to `end`. */
  seconds(end: number): number {
    return (end - this.#t0) / 1000;
  }

  /** Items per second up to `end`: over the last 80 %, or the whole run if no poll saw them. */
  perSecond(end: number): number {
    return this.#warmAt > 0
      ? (this.total - this.#warmCount) / ((end - this.#warmAt) / 1000)
      : this.total / this.seconds(end);
  }
}
