// Settings the server writes into the page (inline JSON, so the page needs no extra request at start).
export interface PageConfig {
  runTimeLimitSeconds: number;
}

const DEFAULTS: PageConfig = { runTimeLimitSeconds: 10 };

export function pageConfig(): PageConfig {
  const el = document.getElementById("ccl-config");
  try {
    const data = JSON.parse(el?.textContent ?? "{}") as Partial<PageConfig>;
    return {
      runTimeLimitSeconds:
        typeof data.runTimeLimitSeconds === "number" && data.runTimeLimitSeconds > 0
          ? data.runTimeLimitSeconds
          : DEFAULTS.runTimeLimitSeconds,
    };
  } catch {
    return DEFAULTS;
  }
}
