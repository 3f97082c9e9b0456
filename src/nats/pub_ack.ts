/**
 * A JetStream publish acknowledgement read from its text: the stream sequence, or the error code
 * it carries. The plain shape (`{"stream":..,"seq":N[,"duplicate":true]}`, every successful
 * publish) is read without a JSON parse; anything else goes through the schema.
 *
 * @module
 */
import { PubAck } from "../../schemas/messages.ts";

/** What an acknowledgement said. */
export type AckReading =
  | { readonly ok: true; readonly seq: number }
  | { readonly ok: false; readonly code: number | undefined };

const _ACK_SEQ = /"seq":(\d+)/;

export function readPubAck(text: string): AckReading {
  if (!text.includes('"error"')) {
    const seq = _ACK_SEQ.exec(text);
    if (seq !== null) return { ok: true, seq: Number(seq[1]) };
  }
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: reported by the caller with the text.
  }
  const ack = PubAck.safeParse(json);
  if (ack.success && ack.data.error === undefined && ack.data.seq !== undefined) {
    return { ok: true, seq: ack.data.seq };
  }
  const code = ack.success ? ack.data.error?.err_code : undefined;
  return { ok: false, code: typeof code === "number" ? code : undefined };
}
