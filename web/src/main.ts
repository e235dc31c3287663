// Entry point: one page, two routes (/ and /s/{sessionId}); everything heavy is loaded on demand.
import "./style.css";
import { homePage } from "./home";

const match = /^\/s\/([^/]+)\/?$/.exec(location.pathname);
if (match?.[1]) {
  const id = decodeURIComponent(match[1]);
  // The editor, Yjs and the collab code are only needed in a session: keep the start page small.
  void import("./session").then(({ sessionPage }) => sessionPage(id, new URLSearchParams(location.search)));
} else {
  homePage();
}
