/**
 * Buffered text output: lines are collected as strings and written in large encoded blocks, so a
 * million records cost a few hundred writes instead of a million.
 *
 * @module
 */

/** Where bytes go: `Deno.stdout`, a `Deno.FsFile`, or a test double. */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

const DEFAULT_CAPACITY = 1 << 17;

export class BufferedTextWriter {
  #sink: ByteSink;
  #parts: string[] = [];
  #chars = 0;
  #capacity: number;
  #encoder = new TextEncoder();

  constructor(sink: ByteSink, capacityChars = DEFAULT_CAPACITY) {
    this.#sink = sink;
    this.#capacity = capacityChars;
  }

  /** Queues text; call {@link flushIfFull} now and then and {@link flush} at the end. */
  write(text: string): void {
    this.#parts.push(text);
    this.#chars += text.length;
  }

  get full(): boolean {
    return this.#chars >= this.#capacity;
  }

  async flushIfFull(): Promise<void> {
    if (this.#chars >= this.#capacity) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#parts.length === 0) return;
    const bytes = this.#encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#chars = 0;
    let off = 0;
    while (off < bytes.length) off += await this.#sink.write(bytes.subarray(off));
  }
}
