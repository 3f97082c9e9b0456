/**
 * Decoding of raw observation messages (`<prefix>.obs.<key>`) in every accepted form.
 *
 * @module
 */

/**
 * Observations of one message in any accepted form: `{"v":[..]}`, `{"x","y","z"}`, `[n, ...]`,
 * a JSON array of those, or (with `f32`) little-endian float32 rows of `dim` values.
 */
export function decodeObservations(data: Uint8Array, dim: number, f32: boolean): number[][] {
  if (f32) {
    if (dim < 1 || data.byteLength % (4 * dim) !== 0) return [];
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const rows: number[][] = [];
    for (let o = 0; o < data.byteLength; o += 4 * dim) {
      const row: number[] = [];
      for (let j = 0; j < dim; j++) row.push(view.getFloat32(o + 4 * j, true));
      rows.push(row);
    }
    return rows;
  }
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return [];
  }
  const one = (o: unknown): number[] | undefined => {
    if (Array.isArray(o)) return o.every((x) => typeof x === "number") ? o as number[] : undefined;
    if (o !== null && typeof o === "object") {
      const r = o as Record<string, unknown>;
      if (Array.isArray(r.v)) return r.v as number[];
      if (typeof r.x === "number") {
        return [r.x, r.y, r.z].filter((x) => typeof x === "number") as number[];
      }
    }
    return undefined;
  };
  const single = one(v);
  if (single !== undefined) return [single];
  if (Array.isArray(v)) return v.map(one).filter((r): r is number[] => r !== undefined);
  return [];
}
