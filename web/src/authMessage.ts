// The live endpoint's auth messages (type 2): `varUint(kind) · varString(reason)`. The server sends y-protocols'
// "permission denied" with reason SESSION_ENDED when the owner ends the session, and its own PERMISSION_GRANTED
// with SESSION_REOPENED when the owner reopens it (stock y-websocket clients log the first and skip the second).
import { AUTH, SESSION_ENDED, SESSION_REOPENED } from "./contracts.gen";

function varUint(bytes: Uint8Array, at: { pos: number }): number {
  let num = 0;
  let mult = 1;
  for (;;) {
    if (at.pos >= bytes.length) throw new RangeError("unexpected end of message");
    const byte = bytes[at.pos++]!;
    num += (byte & 0x7f) * mult;
    if (byte < 0x80) return num;
    mult *= 128;
    if (mult > 2 ** 53) throw new RangeError("integer out of range");
  }
}

/** Whether an auth message's payload (from ``pos``, after the message type) says the session ended (true), was
 * reopened (false), or something else (null: left alone). */
export function sessionEndedBy(bytes: Uint8Array, pos: number): boolean | null {
  try {
    const at = { pos };
    const kind = varUint(bytes, at);
    const length = varUint(bytes, at);
    if (at.pos + length > bytes.length) return null;
    const reason = new TextDecoder().decode(bytes.subarray(at.pos, at.pos + length));
    if (kind === AUTH.PERMISSION_DENIED && reason === SESSION_ENDED) return true;
    if (kind === AUTH.PERMISSION_GRANTED && reason === SESSION_REOPENED) return false;
  } catch {
    // Not one of ours: ignored, as y-protocols ignores what it does not know.
  }
  return null;
}
