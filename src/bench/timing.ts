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
