/**
 * A progress bar on stderr: redrawn in place on a terminal; otherwise (logs) a line every ~10 %
 * and at least every 30 s, so a long run never looks stalled,
 * silent when `quiet`. Never writes to stdout, so `--json` output stays parseable.
 */
export class Progress {
  readonly #total: number;
  readonly #label: string;
  readonly #tty: boolean;
  readonly #quiet: boolean;
  readonly #start = performance.now();
  #lastDraw = 0;
  #lastDecile = -1;

  constructor(label: string, total: number, options: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}) {
    this.#label = label;
    this.#total = Math.max(1, total);
    this.#quiet = options.quiet ?? false;
    this.#tty = (options.stream ?? process.stderr).isTTY === true;
  }

  /** Reports `done` of `total`, with an optional suffix (e.g. the last return). */
  update(done: number, suffix = ''): void {
    if (this.#quiet) return;
    const frac = Math.min(1, done / this.#total);
    const now = performance.now();
    const elapsed = (now - this.#start) / 1000;
    const eta = frac > 0 ? (elapsed * (1 - frac)) / frac : 0;
    const text = `${this.#label} ${done}/${this.#total} ${(100 * frac).toFixed(0)}% ${elapsed.toFixed(1)}s eta ${eta.toFixed(1)}s ${suffix}`;
    if (this.#tty) {
      if (now - this.#lastDraw < 100 && done < this.#total) return;
      this.#lastDraw = now;
      const width = 24;
      const filled = Math.round(frac * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
      if (done >= this.#total) process.stderr.write('\n');
    } else {
      const decile = Math.floor(frac * 10);
      if (decile === this.#lastDecile && now - this.#lastDraw < 30_000) return;
      this.#lastDecile = decile;
      this.#lastDraw = now;
      process.stderr.write(`${text}\n`);
    }
  }
}
