/**
 * Confusion counts of anomaly flags against 0/1 labels, pooled over keys.
 *
 * @module
 */
import type { ReplayMetrics } from "../../schemas/replay.ts";

export class Confusion {
  tp = 0;
  fp = 0;
  fn = 0;
  tn = 0;

  add(label: 0 | 1, anomaly: boolean): void {
    if (label === 1) anomaly ? this.tp++ : this.fn++;
    else anomaly ? this.fp++ : this.tn++;
  }

  get labelled(): number {
    return this.tp + this.fp + this.fn + this.tn;
  }

  /** Counts plus F1, FAR = FP/(FP+TN), MAR = FN/(FN+TP); a rate with a zero denominator is null. */
  metrics(): ReplayMetrics {
    const { tp, fp, fn, tn } = this;
    const ratio = (a: number, b: number) => (b === 0 ? null : a / b);
    return {
      labelled: this.labelled,
      tp,
      fp,
      fn,
      tn,
      f1: ratio(2 * tp, 2 * tp + fp + fn),
      far: ratio(fp, fp + tn),
      mar: ratio(fn, fn + tp),
    };
  }
}
