// Entry point: one page, three routes (/, /s/{sessionId} and the read-only /v/{viewerId}); everything heavy is
// loaded on demand.
import "./style.css";
import type { PadRoute } from "./access";
import { homePage } from "./home";
import { ownerCodeOf } from "./ownerLinks";
import { store } from "./store";
import { followStoredTheme } from "./ui/settings";

// Before anything renders, so no page flashes in the other theme.
followStoredTheme();

// An owner link's code (`#owner=…`), taken from the address as the page starts.
let ownerCode: string | null = null;

function route(): PadRoute | null {
  const session = /^\/s\/([^/]+)\/?$/.exec(location.pathname);
  if (session?.[1]) {
    ownerCode = takeFragment(decodeURIComponent(session[1]));
    return { kind: "session", sessionId: decodeURIComponent(session[1]), view: new URLSearchParams(location.search).has("view") };
  }
  const view = /^\/v\/([^/]+)\/?$/.exec(location.pathname);
  return view?.[1] ? { kind: "view", viewerId: decodeURIComponent(view[1]) } : null;
}

/** A link of a server where the session id alone grants nothing carries the invite in its fragment (never sent
 * to a server, so never in a log): kept for the session's requests. An owner link carries its one-time code there
 * too: returned, to be claimed. Both are taken out of the address bar at once, where a screen share, the history
 * or a copied address would show them. */
function takeFragment(sessionId: string): string | null {
  const invite = new URLSearchParams(location.hash.slice(1)).get("invite");
  const owner = ownerCodeOf(location.hash);
  if (!invite && !owner) return null;
  if (invite) store.setInvite(sessionId, invite);
  history.replaceState(history.state, "", location.pathname + location.search);
  return owner;
}

const pad = route();
if (pad) {
  // The editor, Yjs and the collab code are only needed in a session: keep the start page small.
  void import("./session").then(({ sessionPage }) => sessionPage(pad, ownerCode));
} else {
  homePage();
}
