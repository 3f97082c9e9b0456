/**
 * A temporary directory for a test (`await using`), removed with everything in it on dispose.
 *
 * @module
 */

export interface TempDir extends AsyncDisposable {
  readonly path: string;
  /** Writes `text` to `name` (relative, parent folders created) and returns its path. */
  write(name: string, text: string): Promise<string>;
}

export async function tempDir(prefix = "mvn_test_"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async write(name: string, text: string): Promise<string> {
      const full = `${path}/${name}`;
      const parent = full.slice(0, full.lastIndexOf("/"));
      await Deno.mkdir(parent, { recursive: true });
      await Deno.writeTextFile(full, text);
      return full;
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}
