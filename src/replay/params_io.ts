/**
 * `--params-in` (starting parameters, one set for every key or a map key → set) and
 * `--params-out` (final parameters per key).
 *
 * @module
 */
import { ParamsEntry, ParamsFile } from "../../schemas/replay.ts";
import type { ParamsOutFile } from "../../schemas/replay.ts";
import type { HeadParams, HeadSnapshot } from "../engine/types.ts";
import { ReplayUsageError } from "../io/errors.ts";

/** Parsed `--params-in`: `all` applies to every key, `byKey` to the keys it names. */
export interface StartParams {
  readonly all: HeadParams | null;
  readonly byKey: ReadonlyMap<string, HeadParams>;
}

/** Reads and validates a params file; throws {@link ReplayUsageError} naming the file and the problem. */
export async function readParamsFile(path: string): Promise<StartParams> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    throw new ReplayUsageError(
      `--params-in '${path}': expected a readable file, found ${
        cause instanceof Deno.errors.NotFound ? "none" : String(cause)
      }`,
      { cause },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ReplayUsageError(`--params-in '${path}': expected JSON (${String(cause)})`, {
      cause,
    });
  }
  const single = ParamsEntry.safeParse(json);
  if (single.success) return { all: normalise(single.data, path, "*"), byKey: new Map() };
  // An object with loc/scale_tril meant the single form: its own error is the helpful one.
  const meantSingle = json !== null && typeof json === "object" &&
    ("loc" in json || "scale_tril" in json);
  const parsed = meantSingle ? single : ParamsFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ReplayUsageError(
      `--params-in '${path}': expected {"loc":[...],"scale_tril":[[...],...]} or a map key → that` +
        ` (${issue.path.join(".") || "top level"}: ${issue.message})`,
    );
  }
  const byKey = new Map<string, HeadParams>();
  for (const [key, entry] of Object.entries(parsed.data as Record<string, ParamsEntry>)) {
    byKey.set(key, normalise(entry, path, key));
  }
  return { all: null, byKey };
}

/**
 * Full d×d lower-triangular factor from ragged (row i has i+1 entries) or full rows; the upper part
 * must be zero and the diagonal positive.
 */
function normalise(entry: ParamsEntry, path: string, key: string): HeadParams {
  const d = entry.loc.length;
  const where = `--params-in '${path}' key '${key}'`;
  if (entry.scale_tril.length !== d) {
    throw new ReplayUsageError(
      `${where}: expected scale_tril with ${d} rows (loc has ${d} values), found ${entry.scale_tril.length}`,
    );
  }
  const tril: number[][] = [];
  for (let i = 0; i < d; i++) {
    const row = entry.scale_tril[i];
    if (row.length !== i + 1 && row.length !== d) {
      throw new ReplayUsageError(
        `${where}: expected scale_tril row ${i} of length ${i + 1} or ${d}, found ${row.length}`,
      );
    }
    const full = new Array<number>(d).fill(0);
    for (let j = 0; j < row.length; j++) {
      if (j > i && row[j] !== 0) {
        throw new ReplayUsageError(
          `${where}: expected a lower-triangular scale_tril, found ${row[j]} at [${i}][${j}]`,
        );
      }
      full[j] = row[j];
    }
    if (!(full[i] > 0)) {
      throw new ReplayUsageError(
        `${where}: expected a positive scale_tril diagonal, found ${full[i]} at [${i}][${i}]`,
      );
    }
    tril.push(full);
  }
  return { loc: [...entry.loc], scale_tril: tril };
}

/** Dimension of the given parameters (all the same), or undefined when there are none. */
export function paramsDim(params: StartParams): number | undefined {
  const dims = new Set<number>();
  if (params.all !== null) dims.add(params.all.loc.length);
  for (const p of params.byKey.values()) dims.add(p.loc.length);
  if (dims.size > 1) {
    throw new ReplayUsageError(
      `--params-in: expected one dimension for every key, found ${[...dims].join(", ")}`,
    );
  }
  return dims.size === 1 ? [...dims][0] : undefined;
}

/** The `--params-out` document: key → final parameters, keys sorted. */
export function paramsOut(snapshots: readonly HeadSnapshot[]): ParamsOutFile {
  const sorted = [...snapshots].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // fromEntries keeps any key (even "__proto__") as an own property.
  return Object.fromEntries(sorted.map((s) => [s.key, {
    loc: [...s.loc],
    scale_tril: s.scale_tril.map((r) => [...r]),
    covariance: s.covariance.map((r) => [...r]),
    observations: s.observations,
    steps: s.steps,
    rejected_updates: s.rejected_updates,
    // Conditional head: the parameters above are at the key's latest context.
    ...(s.head === "conditional"
      ? { head: s.head, architecture: s.architecture, context: s.context, version: s.version }
      : {}),
  }]));
}
