// The shared run output: the last MAX_RUNS results in the document's "runs" array, each stream capped.
import type * as Y from "yjs";
import type { Language } from "./languages";

export const MAX_RUNS = 20;
export const MAX_STREAM_BYTES = 64 * 1024;

export interface RunBy {
  participantId: string;
  name: string;
  color: string;
}

/** What a run produced, wherever it ran (the server's `/execute` answer has the same fields). */
export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  outputTruncated: boolean;
  compileOutput: string;
  durationMs: number;
  language: Language;
}

/** One entry of the shared `runs` array. */
export interface RunRecord extends RunResult {
  id: string;
  by: RunBy | null;
  source: "browser" | "server";
  startedAt: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Cut ``text`` to at most ``maxBytes`` of UTF-8 without splitting a character. */
export function capUtf8(text: string, maxBytes = MAX_STREAM_BYTES): { text: string; cut: boolean } {
  if (text.length * 3 <= maxBytes) return { text, cut: false };
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return { text, cut: false };
  // A fatal-less decoder drops the partial character at the end as U+FFFD; strip it.
  return { text: decoder.decode(bytes.subarray(0, maxBytes)).replace(/\uFFFD$/, ""), cut: true };
}

/** Append a run and drop the oldest past MAX_RUNS, in one transaction, as every writer must. */
export function appendRun(doc: Y.Doc, runs: Y.Array<Record<string, unknown>>, run: RunRecord): void {
  const stdout = capUtf8(run.stdout);
  const stderr = capUtf8(run.stderr);
  const compile = capUtf8(run.compileOutput);
  const capped: RunRecord = {
    ...run,
    stdout: stdout.text,
    stderr: stderr.text,
    compileOutput: compile.text,
    outputTruncated: run.outputTruncated || stdout.cut || stderr.cut || compile.cut,
  };
  doc.transact(() => {
    runs.push([{ ...capped }]);
    const excess = runs.length - MAX_RUNS;
    if (excess > 0) runs.delete(0, excess);
  });
}

/** Read one entry defensively: the array is shared, so any client (or a bug) may have put anything there. */
export function parseRun(value: unknown): RunRecord | null {
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const str = (x: unknown): string => (typeof x === "string" ? x : "");
  const num = (x: unknown): number | null => (typeof x === "number" && Number.isFinite(x) ? x : null);
  const byRaw = v.by as Record<string, unknown> | null | undefined;
  return {
    id: str(v.id),
    by:
      byRaw && typeof byRaw === "object"
        ? { participantId: str(byRaw.participantId), name: str(byRaw.name), color: str(byRaw.color) }
        : null,
    source: v.source === "server" ? "server" : "browser",
    language: str(v.language) as Language,
    stdout: str(v.stdout),
    stderr: str(v.stderr),
    exitCode: num(v.exitCode),
    signal: num(v.signal),
    timedOut: v.timedOut === true,
    outputTruncated: v.outputTruncated === true,
    compileOutput: str(v.compileOutput),
    durationMs: num(v.durationMs) ?? 0,
    startedAt: str(v.startedAt),
  };
}
