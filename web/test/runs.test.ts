import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { appendRun, capChunks, capUtf8, classify, MAX_RUNS, MAX_STREAM_BYTES, parseRun, type RunRecord } from "../src/runs";

const utf8 = (s: string): number => new TextEncoder().encode(s).length;

function record(overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    id: "run-0000000000000000",
    by: null,
    source: "browser",
    startedAt: "2026-01-02T03:04:05.678Z",
    stdout: "",
    stderr: "",
    exitCode: 0,
    signal: null,
    signalName: null,
    timedOut: false,
    outputTruncated: false,
    outcome: "ok",
    compileOutput: "",
    durationMs: 1,
    language: "python",
    ...overrides,
  };
}

describe("classify", () => {
  const base = { exitCode: 0, signal: null, timedOut: false, outputTruncated: false, stopped: false };
  it("names each outcome from the runner's flags", () => {
    expect(classify(base).outcome).toBe("ok");
    expect(classify({ ...base, exitCode: 1 }).outcome).toBe("error");
    expect(classify({ ...base, exitCode: null, signal: 11 })).toEqual({ outcome: "crashed", signalName: "SIGSEGV" });
  });
  it("lets a limit or a Stop explain the kill that enforced it", () => {
    const killed = { ...base, exitCode: null, signal: 9 };
    expect(classify({ ...killed, timedOut: true }).outcome).toBe("time_limit");
    expect(classify({ ...killed, outputTruncated: true }).outcome).toBe("output_limit");
    expect(classify({ ...killed, stopped: true, timedOut: true }).outcome).toBe("stopped");
  });
});

describe("capUtf8", () => {
  it("never splits a character and says when it cut", () => {
    const text = "é".repeat(10); // 2 bytes each
    expect(capUtf8(text, 7)).toEqual({ text: "ééé", cut: true });
    expect(capUtf8(text, 20)).toEqual({ text, cut: false });
    const emoji = "😀".repeat(3); // 4 bytes each, surrogate pairs in JS
    expect(capUtf8(emoji, 9).text).toBe("😀😀");
  });
  it("holds any text within the stream cap", () => {
    const text = "aé😀".repeat(20_000);
    const capped = capUtf8(text);
    expect(capped.cut).toBe(true);
    expect(utf8(capped.text)).toBeLessThanOrEqual(MAX_STREAM_BYTES);
    expect(text.startsWith(capped.text)).toBe(true);
  });
});

describe("capChunks", () => {
  it("caps each stream on its own and merges neighbours of the same stream", () => {
    const big = "x".repeat(MAX_STREAM_BYTES);
    const { chunks, cut } = capChunks([["stdout", "a"], ["stdout", "b"], ["stderr", big], ["stderr", "more"], ["stdout", "c"]]);
    expect(cut).toBe(true);
    expect(chunks).toEqual([["stdout", "ab"], ["stderr", big], ["stdout", "c"]]);
  });
});

describe("appendRun", () => {
  it("keeps the last MAX_RUNS runs, each capped", () => {
    const doc = new Y.Doc();
    const runs = doc.getArray<Record<string, unknown>>("runs");
    for (let i = 0; i < MAX_RUNS + 5; i++) appendRun(doc, runs, record({ id: `run-${i}`, stdout: "y".repeat(MAX_STREAM_BYTES + 1) }));
    expect(runs.length).toBe(MAX_RUNS);
    const first = parseRun(runs.get(0));
    expect(first?.id).toBe("run-5");
    expect(first?.outputTruncated).toBe(true);
    expect(utf8(first?.stdout ?? "")).toBe(MAX_STREAM_BYTES);
  });
});

describe("parseRun", () => {
  it("reads anything another client may have written without throwing", () => {
    for (const junk of [null, 3, "run", [], { outcome: "won" }, { by: 7, exitCode: "0", output: [["stdin", 1]] }]) {
      const run = parseRun(junk);
      if (run !== null) {
        expect(["ok", "error", "stopped", "time_limit", "output_limit", "crashed"]).toContain(run.outcome);
        expect(run.output).toBeUndefined();
      }
    }
  });
  it("derives the outcome of records from before it existed", () => {
    expect(parseRun({ source: "browser", exitCode: null, signal: 2 })?.outcome).toBe("stopped");
    expect(parseRun({ source: "server", exitCode: null, signal: 2 })?.outcome).toBe("crashed");
  });
});
