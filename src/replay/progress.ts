/**
 * Progress bar on a terminal's stderr: bytes read against total size, observation rate and ETA.
 * Redraws at most every 200 ms on one line.
 *
 * @module
 */

const REDRAW_MS = 200;
const WIDTH = 24;

export class ProgressBar {
  #total: number;
  #write: (text: string) => void;
  #start = performance.now();
  #last = 0;
  #drawn = false;

  constructor(totalBytes: number, write: (text: string) => void) {
    this.#total = Math.max(1, totalBytes);
    this.#write = write;
  }

  update(bytes: number, observations: number): void {
    const now = performance.now();
    if (now - this.#last < REDRAW_MS) return;
    this.#last = now;
    const elapsed = (now - this.#start) / 1000;
    const frac = Math.min(1, bytes / this.#total);
    const filled = Math.round(frac * WIDTH);
    const rate = elapsed > 0 ? observations / elapsed : 0;
    const eta = frac > 0 ? (elapsed * (1 - frac)) / frac : Number.NaN;
    const etaText = Number.isFinite(eta) ? `${eta.toFixed(0)}s` : "?";
    this.#write(
      `\r[${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}] ${(frac * 100).toFixed(1)}% ` +
        `${observations} obs ${rate.toFixed(0)} obs/s ETA ${etaText}\x1b[K`,
    );
    this.#drawn = true;
  }

  /** Clears the bar so the summary line starts clean. */
  finish(): void {
    if (this.#drawn) this.#write("\r\x1b[K");
  }
}
