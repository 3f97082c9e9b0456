/**
 * Model keys → KV keys. KV keys allow only `[-/_=.A-Za-z0-9]` and no leading/trailing dot, while
 * model keys are arbitrary subject remainders (`site.pump-7`). Letters, digits, `-` and `_` are
 * kept; every other UTF-8 byte becomes `=XX` (upper-case hex), so `site.pump-7` → `site=2Epump-7`.
 * The mapping is injective and reversible, and every encoded key is a single KV token.
 *
 * @module
 */

const KEEP = /[A-Za-z0-9_-]/;

/** Encodes a model key for use as a KV key. */
export function encodeKvKey(key: string): string {
  if (key.length === 0) throw new RangeError("expected a non-empty model key, found ''");
  let out = "";
  for (const ch of key) {
    if (KEEP.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of new TextEncoder().encode(ch)) {
      out += `=${b.toString(16).toUpperCase().padStart(2, "0")}`;
    }
  }
  return out;
}

/** Inverse of {@link encodeKvKey}. */
export function decodeKvKey(encoded: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded[i];
    if (c === "=") {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) {
        throw new RangeError(`expected '=' followed by two hex digits in '${encoded}' at ${i}`);
      }
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(c.charCodeAt(0));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
