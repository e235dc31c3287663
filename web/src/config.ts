// Settings the server writes into the page (inline JSON, so the page needs no extra request at start).
import type { AuthMode } from "./contracts.gen";

export interface PageConfig {
  runTimeLimitSeconds: number;
  /** `api-key`: a session's editor link carries its invite; `open` (and servers before the field): the session
   * id is the invitation. */
  auth: AuthMode;
  /** Load the current language's runner while the page is idle, before the first Run (the server's
   * CODECONNECT_WEB_PRELOAD_RUNNERS). */
  preloadRunners: boolean;
}

const DEFAULTS: PageConfig = { runTimeLimitSeconds: 10, auth: "open", preloadRunners: true };

export function pageConfig(): PageConfig {
  return parsePageConfig(document.getElementById("ccl-config")?.textContent);
}

/** The page's settings from the server's inline JSON; a missing or malformed field takes its default. */
export function parsePageConfig(text: string | null | undefined): PageConfig {
  try {
    const data = JSON.parse(text ?? "{}") as Partial<PageConfig>;
    return {
      runTimeLimitSeconds:
        typeof data.runTimeLimitSeconds === "number" && data.runTimeLimitSeconds > 0
          ? data.runTimeLimitSeconds
          : DEFAULTS.runTimeLimitSeconds,
      auth: data.auth === "api-key" ? "api-key" : DEFAULTS.auth,
      preloadRunners: typeof data.preloadRunners === "boolean" ? data.preloadRunners : DEFAULTS.preloadRunners,
    };
  } catch {
    return DEFAULTS;
  }
}
