// Entry point: one page, three routes (/, /s/{sessionId} and the read-only /v/{viewerId}); everything heavy is
// loaded on demand.
import "./style.css";
import type { PadRoute } from "./access";
import { homePage } from "./home";
import { followStoredTheme } from "./ui/settings";

// Before anything renders, so no page flashes in the other theme.
followStoredTheme();

function route(): PadRoute | null {
  const session = /^\/s\/([^/]+)\/?$/.exec(location.pathname);
  if (session?.[1]) {
    return { kind: "session", sessionId: decodeURIComponent(session[1]), view: new URLSearchParams(location.search).has("view") };
  }
  const view = /^\/v\/([^/]+)\/?$/.exec(location.pathname);
  return view?.[1] ? { kind: "view", viewerId: decodeURIComponent(view[1]) } : null;
}

const pad = route();
if (pad) {
  // The editor, Yjs and the collab code are only needed in a session: keep the start page small.
  void import("./session").then(({ sessionPage }) => sessionPage(pad));
} else {
  homePage();
}
