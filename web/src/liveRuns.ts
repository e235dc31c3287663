// The live output of runs in progress, shared through awareness (presence), never through the document: it is
// ephemeral, so it never enters the update log or the history; only the final run card does. The runner
// publishes what is new since its last publication, bounded in rate and in total, and the others append it to
// a live card that the final card replaces. The server checks the same bounds (collab/awareness.py) and closes a
// sender that breaks them, so every page can render what arrives.
import type { Awareness } from "y-protocols/awareness";
import { isLanguage, type Language } from "./languages";
import { capUtf8, type OutputChunk, type StreamName } from "./runs";

/** How often the runner publishes its new output. */
export const LIVE_PUBLISH_INTERVAL_MS = 250;
/** New output per publication, in UTF-8 bytes: 4 KiB four times a second is 16 KiB/s. */
export const LIVE_BYTES_PER_PUBLISH = 4096;
export const LIVE_BYTES_PER_SECOND =
  (LIVE_BYTES_PER_PUBLISH * 1000) / LIVE_PUBLISH_INTERVAL_MS;
/** Live output of one run: published (UTF-8 bytes) and shown on the others' pages (characters). */
export const LIVE_MAX_BYTES = 64 * 1024;
/** A runner further behind than this skips to its newest output: the live card shows a gap, the final card all. */
const LIVE_MAX_BACKLOG = LIVE_BYTES_PER_SECOND;
/** The JSON of one publication's output, escapes included, stays under the server's bound for the text. */
export const LIVE_MAX_JSON_BYTES = 7000;
/** Pieces per publication (the server accepts 64). */
export const LIVE_MAX_PIECES = 48;

export type LivePhase = "loading" | "running" | "stopping";

/** The `run` field of an awareness state. */
export interface LiveRunState {
  id: string;
  language: Language;
  startedAt: string;
  phase: LivePhase;
  /** Where ``output`` starts in the run's output (UTF-16 units): the others see what they missed. */
  offset: number;
  /** What is new since the previous publication. */
  output: OutputChunk[];
}

const LONE_SURROGATE =
  /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const encoder = new TextEncoder();
const utf8Length = (text: string): number => encoder.encode(text).length;

/** The runner's side: collects the output of the run in progress and publishes it in its awareness state. */
export class LivePublisher {
  private run: Omit<LiveRunState, "offset" | "output"> | null = null;
  private pending: OutputChunk[] = [];
  private pendingLength = 0;
  /** UTF-16 units written so far, published or not. */
  private position = 0;
  private publishedBytes = 0;
  private phaseChanged = false;
  private lastPublish = 0;
  private timer = 0;

  constructor(private readonly awareness: Awareness) {}

  begin(id: string, language: Language, startedAt: string): void {
    this.end();
    this.run = { id, language, startedAt, phase: "loading" };
    this.position = this.pendingLength = this.publishedBytes = 0;
    this.pending = [];
    this.phaseChanged = true;
    this.schedule();
  }

  phase(phase: LivePhase): void {
    if (!this.run || this.run.phase === phase) return;
    this.run.phase = phase;
    this.phaseChanged = true;
    this.schedule();
  }

  write(stream: StreamName, raw: string): void {
    if (!this.run || !raw) return;
    // A lone surrogate is not text: the server would refuse the whole state (and close the connection).
    const text = raw.replace(LONE_SURROGATE, "\uFFFD");
    this.position += text.length;
    // Past the cap nothing more is published: only the position moves on, so the end shows no false gap.
    if (this.publishedBytes >= LIVE_MAX_BYTES) return;
    const last = this.pending.at(-1);
    if (last && last[0] === stream) last[1] += text;
    else this.pending.push([stream, text]);
    this.pendingLength += text.length;
    this.schedule();
  }

  /** The run ended: its card is (or is about to be) in the document. */
  end(): void {
    window.clearTimeout(this.timer);
    this.timer = 0;
    if (this.run) this.awareness.setLocalStateField("run", null);
    this.run = null;
    this.pending = [];
    this.pendingLength = 0;
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(
      0,
      this.lastPublish + LIVE_PUBLISH_INTERVAL_MS - performance.now(),
    );
    this.timer = window.setTimeout(() => this.publish(), wait);
  }

  private publish(): void {
    this.timer = 0;
    if (!this.run) return;
    if (this.pendingLength > LIVE_MAX_BACKLOG)
      this.skipTo(LIVE_BYTES_PER_PUBLISH);
    const offset = this.position - this.pendingLength;
    const output = this.take();
    if (output.length === 0 && !this.phaseChanged) return;
    this.phaseChanged = false;
    this.lastPublish = performance.now();
    const state: LiveRunState = { ...this.run, offset, output };
    this.awareness.setLocalStateField("run", state);
    if (this.pendingLength > 0) this.schedule();
  }

  /** Drop the oldest pending output until ``keep`` UTF-16 units are left. */
  private skipTo(keep: number): void {
    let drop = this.pendingLength - keep;
    while (drop > 0 && this.pending.length) {
      const first = this.pending[0]!;
      if (first[1].length <= drop) {
        drop -= first[1].length;
        this.pendingLength -= first[1].length;
        this.pending.shift();
      } else {
        first[1] = first[1].slice(drop);
        this.pendingLength -= drop;
        drop = 0;
      }
    }
  }

  /** The next publication's output: up to LIVE_BYTES_PER_PUBLISH of UTF-8, and never past the run's cap. */
  private take(): OutputChunk[] {
    let room = Math.min(
      LIVE_BYTES_PER_PUBLISH,
      LIVE_MAX_BYTES - this.publishedBytes,
    );
    const out: OutputChunk[] = [];
    while (room > 0 && this.pending.length && out.length < LIVE_MAX_PIECES) {
      const [stream, text] = this.pending[0]!;
      let piece = capUtf8(text, room).text;
      // Control characters grow sixfold in JSON: keep the state within what the server accepts.
      while (
        piece &&
        utf8Length(JSON.stringify([...out, [stream, piece]])) >
          LIVE_MAX_JSON_BYTES
      ) {
        piece = piece.slice(0, Math.floor(piece.length / 2));
      }
      // Never split a surrogate pair: the server refuses text that is not valid Unicode.
      if (/[\uD800-\uDBFF]$/.test(piece)) piece = piece.slice(0, -1);
      if (!piece) break;
      out.push([stream, piece]);
      room -= utf8Length(piece);
      this.publishedBytes += utf8Length(piece);
      this.pendingLength -= piece.length;
      if (piece.length === text.length) this.pending.shift();
      else this.pending[0] = [stream, text.slice(piece.length)];
    }
    return out;
  }
}

const PHASES: ReadonlySet<string> = new Set<LivePhase>([
  "loading",
  "running",
  "stopping",
]);

/** Read a peer's `run` field defensively: the server checks it, but a page never trusts shared state blindly. */
export function parseLiveRun(value: unknown): LiveRunState | null {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return null;
  const v = value as Record<string, unknown>;
  if (typeof v.id !== "string" || !/^[A-Za-z0-9_-]{16,64}$/.test(v.id))
    return null;
  if (
    !isLanguage(v.language) ||
    typeof v.startedAt !== "string" ||
    typeof v.phase !== "string"
  )
    return null;
  if (
    !PHASES.has(v.phase) ||
    typeof v.offset !== "number" ||
    !Number.isSafeInteger(v.offset) ||
    v.offset < 0
  ) {
    return null;
  }
  if (!Array.isArray(v.output)) return null;
  const output: OutputChunk[] = [];
  for (const item of v.output as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2) return null;
    const [stream, text] = item as unknown[];
    if (
      (stream !== "stdout" && stream !== "stderr") ||
      typeof text !== "string"
    )
      return null;
    output.push([stream, text]);
  }
  return {
    id: v.id,
    language: v.language,
    startedAt: v.startedAt,
    phase: v.phase as LivePhase,
    offset: v.offset,
    output,
  };
}
