// Messages between the page and a runner worker.
import type { OutputChunk, StreamName } from "../runs";

export type Stream = StreamName;

export interface RunMessage {
  type: "run";
  code: string;
  language: "python" | "javascript" | "typescript";
  stdin: string;
  /** Written by the page to ask the program to stop: Pyodide's interrupt buffer (2 = SIGINT), or a flag. */
  interrupt: SharedArrayBuffer | null;
  limitMs: number;
  maxOutputBytes: number;
}

export interface LoadMessage {
  type: "load";
}

export type ToWorker = RunMessage | LoadMessage;

export type FromWorker =
  | { type: "loading"; what: string }
  | { type: "ready" }
  | { type: "started" }
  /** Output in the order it was written, both streams in one list. */
  | { type: "output"; chunks: OutputChunk[] }
  | {
      type: "done";
      exitCode: number | null;
      interrupted: boolean;
      truncated: boolean;
      compileOutput: string;
      /** A module the program imports that this runner does not have (Python). */
      missingModule?: string;
      /** The worker's own deadline stopped the program (the page's timer may not have fired yet). */
      deadlineReached?: boolean;
    }
  | { type: "failed"; message: string };

/**
 * Collects a program's output in the worker and forwards it in batches: a print in a tight loop would
 * otherwise post one message per call. The batch is one ordered list, so stdout and stderr keep the order the
 * program wrote them in. Past the cap it stops forwarding and asks the program to stop.
 */
export class OutputPump {
  private chunks: OutputChunk[] = [];
  private pending = 0;
  private sent = 0;
  private lastFlush = 0;
  truncated = false;

  constructor(
    private readonly post: (m: FromWorker) => void,
    private readonly maxBytes: number,
    private readonly onOverflow: () => void,
  ) {}

  write(stream: Stream, text: string): void {
    if (this.truncated || text.length === 0) return;
    // UTF-16 length is a cheap upper bound of what is left; the page trims to exact UTF-8 bytes.
    const room = this.maxBytes - this.sent;
    if (text.length > room) {
      text = text.slice(0, Math.max(room, 0));
      this.truncated = true;
    }
    this.sent += text.length;
    this.pending += text.length;
    const last = this.chunks.at(-1);
    if (last && last[0] === stream) last[1] += text;
    else this.chunks.push([stream, text]);
    const now = Date.now();
    if (this.truncated || this.pending > 8192 || now - this.lastFlush > 40) this.flush();
    if (this.truncated) this.onOverflow();
  }

  flush(): void {
    this.lastFlush = Date.now();
    if (this.chunks.length === 0) return;
    this.post({ type: "output", chunks: this.chunks });
    this.chunks = [];
    this.pending = 0;
  }
}
