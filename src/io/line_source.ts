/**
 * Streaming line reader: reads a file in large chunks and hands out its lines a chunk at a time,
 * so a million-line file never sits in memory whole and the per-line cost stays a string split.
 *
 * @module
 */

const CHUNK_BYTES = 1 << 20;
const NEWLINE = 0x0a;

/** A run of consecutive lines; `first` is the 1-based line number of `lines[0]`. */
export interface LineChunk {
  readonly lines: string[];
  readonly first: number;
}

/**
 * Lines of one file, without their `\n` / `\r\n` terminators; a UTF-8 byte order mark at the
 * start is dropped. Splitting on the newline byte before decoding is safe in UTF-8: 0x0A never
 * occurs inside a multi-byte character.
 */
export class LineSource implements AsyncDisposable {
  /** Bytes read from the file so far (for progress). */
  bytesRead = 0;
  #file: Deno.FsFile;
  #decoder = new TextDecoder();
  #carry: Uint8Array = new Uint8Array(0);
  #nextLine = 1;
  #eof = false;
  #closed = false;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  static async open(path: string): Promise<LineSource> {
    return new LineSource(await Deno.open(path, { read: true }));
  }

  /** The next chunk of lines, or null at the end of the file. */
  async next(): Promise<LineChunk | null> {
    while (!this.#eof) {
      const buf = new Uint8Array(CHUNK_BYTES);
      const got = await this.#file.read(buf);
      if (got === null) {
        this.#eof = true;
        break;
      }
      this.bytesRead += got;
      const data = this.#append(buf.subarray(0, got));
      const cut = data.lastIndexOf(NEWLINE);
      if (cut < 0) {
        this.#carry = data;
        continue;
      }
      this.#carry = data.slice(cut + 1);
      return this.#split(data.subarray(0, cut));
    }
    if (this.#carry.length === 0) return null;
    const rest = this.#carry;
    this.#carry = new Uint8Array(0);
    return this.#split(rest);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #append(bytes: Uint8Array): Uint8Array {
    if (this.#carry.length === 0) return bytes;
    const out = new Uint8Array(this.#carry.length + bytes.length);
    out.set(this.#carry, 0);
    out.set(bytes, this.#carry.length);
    return out;
  }

  #split(bytes: Uint8Array): LineChunk {
    let text = this.#decoder.decode(bytes);
    if (this.#nextLine === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const s = lines[i];
      if (s.length > 0 && s.charCodeAt(s.length - 1) === 13) lines[i] = s.slice(0, -1);
    }
    const first = this.#nextLine;
    this.#nextLine += lines.length;
    return { lines, first };
  }
}
