// The shared run output: the last MAX_RUNS results in the document's "runs" array, each stream capped.
import type * as Y from "yjs";
import {
  type ExecuteResult,
  type Language,
  MAX_RUNS,
  MAX_STREAM_BYTES,
  type Outcome,
  OUTCOMES as OUTCOME_LIST,
} from "./contracts.gen";

export { MAX_RUNS, MAX_STREAM_BYTES, type Outcome };

export interface RunBy {
  participantId: string;
  name: string;
  color: string;
}

export type StreamName = "stdout" | "stderr";

/** A piece of output as it was written: stdout and stderr interleave in the order the program wrote them. */
export type OutputChunk = [StreamName, string];

const OUTCOMES: ReadonlySet<string> = new Set<Outcome>(OUTCOME_LIST);

/** What a run produced, wherever it ran: the server's `/execute` answer (its fields are generated from the
 * server's model), and the order the streams were written in where the runner can tell. */
export interface RunResult extends ExecuteResult {
  /** Both streams in the order they were written; absent where the runner cannot tell (server runs, old records). */
  output?: OutputChunk[];
}

/** One entry of the shared `runs` array. */
export interface RunRecord extends RunResult {
  id: string;
  by: RunBy | null;
  source: "browser" | "server";
  startedAt: string;
  /** The input the run read (stdin), capped like each output stream; absent on records from before it. */
  stdin?: string;
}

/** The flags every runner reports; {@link classify} turns them into the outcome. */
export interface RunFlags {
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  outputTruncated: boolean;
  /** Someone pressed Stop (the program may have been interrupted or its worker terminated). */
  stopped: boolean;
}

// Linux numbering, as the server's sandbox reports them.
const SIGNAL_NAMES: Record<number, string> = {
  1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
  9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
  24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS",
};

export function signalName(signal: number | null): string | null {
  return signal === null ? null : (SIGNAL_NAMES[signal] ?? null);
}

/**
 * The outcome of a run from its flags: the one place the page reads them (the server does the same in
 * execution/service.py). A limit or a Stop explains the interrupt or kill that enforced it, so they come first.
 */
export function classify(flags: RunFlags): { outcome: Outcome; signalName: string | null } {
  if (flags.stopped) return { outcome: "stopped", signalName: null };
  if (flags.timedOut) return { outcome: "time_limit", signalName: null };
  if (flags.outputTruncated) return { outcome: "output_limit", signalName: null };
  if (flags.exitCode === null && flags.signal !== null) return { outcome: "crashed", signalName: signalName(flags.signal) };
  return { outcome: flags.exitCode === 0 ? "ok" : "error", signalName: null };
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

/** Keep ``chunks`` within the per-stream cap, so the ordered copy never holds more than stdout and stderr do. */
export function capChunks(chunks: readonly OutputChunk[]): { chunks: OutputChunk[]; cut: boolean } {
  const used: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  const kept: OutputChunk[] = [];
  let cut = false;
  for (const [stream, text] of chunks) {
    const room = MAX_STREAM_BYTES - used[stream];
    const capped = capUtf8(text, Math.max(room, 0));
    cut ||= capped.cut;
    if (!capped.text) continue;
    used[stream] += encoder.encode(capped.text).length;
    const last = kept.at(-1);
    if (last && last[0] === stream) last[1] += capped.text;
    else kept.push([stream, capped.text]);
  }
  return { chunks: kept, cut };
}

/** Append a run and drop the oldest past MAX_RUNS, in one transaction, as every writer must. */
export function appendRun(doc: Y.Doc, runs: Y.Array<Record<string, unknown>>, run: RunRecord): void {
  const stdout = capUtf8(run.stdout);
  const stderr = capUtf8(run.stderr);
  const compile = capUtf8(run.compileOutput);
  const output = run.output ? capChunks(run.output) : null;
  const capped: RunRecord = {
    ...run,
    ...(run.stdin ? { stdin: capUtf8(run.stdin).text } : {}),
    stdout: stdout.text,
    stderr: stderr.text,
    compileOutput: compile.text,
    outputTruncated: run.outputTruncated || stdout.cut || stderr.cut || compile.cut || (output?.cut ?? false),
  };
  if (output) capped.output = output.chunks;
  else delete capped.output;
  if (!capped.stdin) delete capped.stdin;
  doc.transact(() => {
    runs.push([{ ...capped }]);
    const excess = runs.length - MAX_RUNS;
    if (excess > 0) runs.delete(0, excess);
  });
}

function parseOutput(value: unknown): OutputChunk[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const chunks: OutputChunk[] = [];
  for (const item of value as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2) return undefined;
    const [stream, text] = item as unknown[];
    if ((stream !== "stdout" && stream !== "stderr") || typeof text !== "string") return undefined;
    chunks.push([stream, text]);
  }
  // Another client wrote it: hold it to the same caps as the streams before it reaches the page.
  return capChunks(chunks).chunks;
}

/** Read one entry defensively: the array is shared, so any client (or a bug) may have put anything there. */
export function parseRun(value: unknown): RunRecord | null {
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const str = (x: unknown): string => (typeof x === "string" ? x : "");
  const num = (x: unknown): number | null => (typeof x === "number" && Number.isFinite(x) ? x : null);
  const byRaw = v.by as Record<string, unknown> | null | undefined;
  const source = v.source === "server" ? "server" : "browser";
  const exitCode = num(v.exitCode);
  const signal = num(v.signal);
  const timedOut = v.timedOut === true;
  const outputTruncated = v.outputTruncated === true;
  // Records written before `outcome` existed: a browser run that ended by SIGINT or SIGKILL and hit no limit
  // was stopped (those are the signals Stop uses there).
  const derived = classify({
    exitCode,
    signal,
    timedOut,
    outputTruncated,
    stopped: source === "browser" && exitCode === null && (signal === 2 || signal === 9) && !timedOut && !outputTruncated,
  });
  const outcome = typeof v.outcome === "string" && OUTCOMES.has(v.outcome) ? (v.outcome as Outcome) : derived.outcome;
  const output = parseOutput(v.output);
  return {
    id: str(v.id),
    by:
      byRaw && typeof byRaw === "object"
        ? { participantId: str(byRaw.participantId), name: str(byRaw.name), color: str(byRaw.color) }
        : null,
    source,
    language: str(v.language) as Language,
    stdout: str(v.stdout),
    stderr: str(v.stderr),
    ...(output ? { output } : {}),
    exitCode,
    signal,
    signalName: typeof v.signalName === "string" ? v.signalName : signalName(signal),
    timedOut,
    outputTruncated,
    outcome,
    compileOutput: str(v.compileOutput),
    durationMs: num(v.durationMs) ?? 0,
    startedAt: str(v.startedAt),
    ...(typeof v.stdin === "string" && v.stdin ? { stdin: capUtf8(v.stdin).text } : {}),
  };
}
