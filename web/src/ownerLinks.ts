// Owner links: a one-time link that makes the browser opening it the session's owner. How the owner's page reaches
// a person when no browser created the session (an integration did, with an API key), or another device of the
// owner's. The link is `/s/{sessionId}#owner=<code>`: the code is in the fragment (never sent to a server), the page
// takes it out of the address bar at once and claims it in a request body; the answer is the owner key, which this
// browser keeps with the session as if it had created it.
import { api, ApiError } from "./api";
import { ownerActionErrorText } from "./invites";
import { store } from "./store";

/** What the page says when the code no longer opens the owner's page. */
export const OWNER_LINK_REFUSED = "This owner link was used or has expired; ask for a new one.";

/** The owner link's code in a page's fragment (`#owner=…`), if any. */
export function ownerCodeOf(fragment: string): string | null {
  return new URLSearchParams(fragment.replace(/^#/, "")).get("owner") || null;
}

/** A refused claim, in plain words. */
export function claimErrorText(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === "owner_link_invalid" || err.status === 403 || err.status === 422) return OWNER_LINK_REFUSED;
    if (err.status === 429 || err.status === 503) return "The owner link could not be used now: the server is busy. Open it again in a moment.";
    if (err.code === "network_error") return "The owner link could not be used: the server cannot be reached. Open it again once you are online.";
    if (err.status === 404) return "This owner link's session no longer exists.";
  }
  return `The owner link could not be used: ${err instanceof Error ? err.message : String(err)}`;
}

/** Claim ``code`` for the session: null once this browser holds the owner key, else why not (the page then goes on
 * as anyone's would). */
export async function claimOwnerLink(sessionId: string, code: string): Promise<string | null> {
  try {
    const { ownerKey } = await api.claimOwnerLink(sessionId, code);
    store.setOwnerKey(sessionId, ownerKey);
    return null;
  } catch (err) {
    return claimErrorText(err);
  }
}

/** Until when a link works, in the reader's clock: "until 14:05". */
export function expiryText(expiresAt: string, now: Date = new Date()): string {
  const at = new Date(expiresAt);
  const minutes = Math.max(0, Math.round((at.getTime() - now.getTime()) / 60_000));
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return minutes >= 1 ? `Works once, until ${time} (${minutes} min).` : `Works once, until ${time}.`;
}

/** What the owner is told before giving the link out. */
export const OWNER_LINK_WARNING =
  "Whoever opens this link becomes this session's owner (end it, delete it, remove people). Open it on your own device, or give it only to someone who should own the session.";

/** A refused link making, in plain words. */
export function ownerLinkErrorText(err: unknown): string {
  return ownerActionErrorText("No owner link", err);
}
