import { describe, expect, it } from "vitest";
import { parsePageConfig } from "../src/config";

describe("parsePageConfig", () => {
  it("takes what the server wrote", () => {
    const text = JSON.stringify({ runTimeLimitSeconds: 7.5, auth: "api-key", preloadRunners: false });
    expect(parsePageConfig(text)).toEqual({ runTimeLimitSeconds: 7.5, auth: "api-key", preloadRunners: false });
  });

  it("falls back to the defaults for a missing element, bad JSON or fields of the wrong kind", () => {
    const defaults = { runTimeLimitSeconds: 10, auth: "open", preloadRunners: true };
    for (const text of [null, undefined, "", "{", "[]", "null"]) expect(parsePageConfig(text)).toEqual(defaults);
    const wrong = JSON.stringify({ runTimeLimitSeconds: -1, auth: "root", preloadRunners: "no" });
    expect(parsePageConfig(wrong)).toEqual(defaults);
  });

  it("keeps preloading on for a server that does not say (an older server)", () => {
    expect(parsePageConfig(JSON.stringify({ runTimeLimitSeconds: 3, auth: "open" })).preloadRunners).toBe(true);
  });
});
