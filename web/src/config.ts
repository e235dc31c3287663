// Settings the server writes into the page (inline JSON, so the page needs no extra request at start).
import type { AuthMode } from "./contracts.gen";

export interface PageConfig {
  runTimeLimitSeconds: number;
  /** `api-key`: a session's editor link carries its invite; `open` (and servers before the field): the session
   * id is the invitation. */
  auth: AuthMode;
}

const DEFAULTS: PageConfig = { runTimeLimitSeconds: 10, auth: "open" };

export function pageConfig(): PageConfig {
  const el = document.getElementById("ccl-config");
  try {
    const data = JSON.parse(el?.textContent ?? "{}") as Partial<PageConfig>;
    return {
      runTimeLimitSeconds:
        typeof data.runTimeLimitSeconds === "number" && data.runTimeLimitSeconds > 0
          ? data.runTimeLimitSeconds
          : DEFAULTS.runTimeLimitSeconds,
      auth: data.auth === "api-key" ? "api-key" : DEFAULTS.auth,
    };
  } catch {
    return DEFAULTS;
  }
}
