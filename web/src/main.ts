// Entry point: one page, three routes (/, /s/{sessionId} and the read-only /v/{viewerId}); everything heavy is
// loaded on demand.
import "./style.css";
import type { PadRoute } from "./access";
import { homePage } from "./home";
import { store } from "./store";
import { followStoredTheme } from "./ui/settings";

// Before anything renders, so no page flashes in the other theme.
followStoredTheme();

function route(): PadRoute | null {
  const session = /^\/s\/([^/]+)\/?$/.exec(location.pathname);
  if (session?.[1]) {
    keepInvite(decodeURIComponent(session[1]));
    return { kind: "session", sessionId: decodeURIComponent(session[1]), view: new URLSearchParams(location.search).has("view") };
  }
  const view = /^\/v\/([^/]+)\/?$/.exec(location.pathname);
  return view?.[1] ? { kind: "view", viewerId: decodeURIComponent(view[1]) } : null;
}

/** A link of a server where the session id alone grants nothing carries the invite in its fragment (never sent
 * to a server, so never in a log): kept for the session's requests, and taken out of the address bar, where a
 * screen share or a copied address would show it. */
function keepInvite(sessionId: string): void {
  const invite = new URLSearchParams(location.hash.slice(1)).get("invite");
  if (!invite) return;
  store.setInvite(sessionId, invite);
  history.replaceState(history.state, "", location.pathname + location.search);
}

const pad = route();
if (pad) {
  // The editor, Yjs and the collab code are only needed in a session: keep the start page small.
  void import("./session").then(({ sessionPage }) => sessionPage(pad));
} else {
  homePage();
}
