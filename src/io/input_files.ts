/**
 * The files a replay reads: one file, or every file under a directory (recursive, sorted by
 * relative path in code-unit order so the order never depends on the locale or the filesystem).
 *
 * @module
 */
import { ReplayUsageError } from "./errors.ts";

/** How a file's lines are read; `auto` sniffs the first non-blank line. */
export type InputFormat = "ndjson" | "csv" | "auto";

export interface InputFile {
  /** Path to open. */
  readonly path: string;
  /** Key of its rows unless a key column/field says otherwise. */
  readonly key: string;
  readonly size: number;
  readonly format: InputFormat;
}

const NDJSON_EXT = /\.(ndjson|jsonl|json)$/i;
const CSV_EXT = /\.(csv|tsv|psv)$/i;

export function formatOf(path: string): InputFormat {
  if (NDJSON_EXT.test(path)) return "ndjson";
  if (CSV_EXT.test(path)) return "csv";
  return "auto";
}

/** Format of a file whose name says nothing, from its first non-blank line. */
export function sniffFormat(firstLine: string): "ndjson" | "csv" {
  const c = firstLine.trimStart()[0];
  return c === "{" || c === "[" ? "ndjson" : "csv";
}

function baseName(path: string): string {
  const parts = path.split(/[\\/]/).filter((p) => p.length > 0);
  return parts[parts.length - 1] ?? path;
}

/**
 * Lists the input. A directory gives each file (hidden names, starting with '.', are left out)
 * with its path relative to the directory as key; a file gives itself with its base name as key.
 * Throws {@link ReplayUsageError} when the input is missing or holds no file.
 */
export async function listInputs(input: string): Promise<InputFile[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(input);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new ReplayUsageError(`input '${input}': expected a file or directory, found none`, {
        cause,
      });
    }
    throw new ReplayUsageError(`input '${input}': cannot be read (${String(cause)})`, { cause });
  }
  if (info.isFile) {
    return [{ path: input, key: baseName(input), size: info.size, format: formatOf(input) }];
  }
  if (!info.isDirectory) {
    throw new ReplayUsageError(`input '${input}': expected a file or directory`);
  }
  const files: InputFile[] = [];
  // A trailing slash would otherwise double up in every path.
  const root = input.length > 1 ? input.replace(/[\\/]+$/, "") : input;
  await walk(root, "", files);
  if (files.length === 0) {
    throw new ReplayUsageError(`input '${input}': expected files in the directory, found none`);
  }
  files.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return files;
}

async function walk(root: string, rel: string, out: InputFile[]): Promise<void> {
  const dir = rel === "" ? root : `${root}/${rel}`;
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".")) continue;
    const childRel = rel === "" ? entry.name : `${rel}/${entry.name}`;
    const path = `${root}/${childRel}`;
    let isFile = entry.isFile;
    let isDir = entry.isDirectory;
    let size = 0;
    if (entry.isSymlink || isFile) {
      const st = await Deno.stat(path);
      isFile = st.isFile;
      isDir = st.isDirectory;
      size = st.size;
    }
    if (isFile) out.push({ path, key: childRel, size, format: formatOf(path) });
    else if (isDir) await walk(root, childRel, out);
  }
}
