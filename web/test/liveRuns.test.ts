import { describe, expect, it } from "vitest";
import { LIVE_OUTPUT_MAX_BYTES, LIVE_OUTPUT_MAX_PIECES } from "../src/contracts.gen";
import { LIVE_BYTES_PER_PUBLISH, LIVE_MAX_JSON_BYTES, LIVE_MAX_PIECES, parseLiveRun } from "../src/liveRuns";

const RUN = {
  id: "0123456789abcdef0123456789abcdef",
  language: "python",
  startedAt: "2026-01-02T03:04:05.678Z",
  phase: "running",
  offset: 0,
  output: [["stdout", "tick 1\n"]],
};

describe("parseLiveRun", () => {
  it("reads a well-formed run", () => {
    expect(parseLiveRun(RUN)).toEqual(RUN);
  });
  it("refuses every malformed shape", () => {
    for (const bad of [
      null,
      [],
      { ...RUN, id: "<script>" },
      { ...RUN, language: "cobol" },
      { ...RUN, phase: "won" },
      { ...RUN, offset: -1 },
      { ...RUN, offset: 1.5 },
      { ...RUN, output: [["stdin", "x"]] },
      { ...RUN, output: [["stdout", { html: "<b>" }]] },
      { ...RUN, output: "text" },
    ]) {
      expect(parseLiveRun(bad)).toBeNull();
    }
  });
});

describe("the page's publishing stays inside the server's bounds", () => {
  it("publishes less than the server relays (a larger state would close the page's connection)", () => {
    expect(LIVE_BYTES_PER_PUBLISH).toBeLessThanOrEqual(LIVE_OUTPUT_MAX_BYTES);
    expect(LIVE_MAX_JSON_BYTES).toBeLessThanOrEqual(LIVE_OUTPUT_MAX_BYTES);
    expect(LIVE_MAX_PIECES).toBeLessThanOrEqual(LIVE_OUTPUT_MAX_PIECES);
  });
});
