// The shared output panel: every run of the session (from the document's "runs" array), newest last, plus the
// live output of the run this browser is doing right now.
import type * as Y from "yjs";
import { languageInfo } from "../languages";
import { parseRun, type OutputChunk, type RunRecord, type StreamName } from "../runs";
import { h, safeColor } from "./dom";

/** The card's status, in the words of the run's outcome (the same for every runner and the server). */
function status(run: RunRecord): { text: string; tone: "ok" | "bad" | "warn" } {
  switch (run.outcome) {
    case "ok":
      return { text: "exit 0", tone: "ok" };
    case "error":
      return { text: run.exitCode === null ? "error" : `exit ${run.exitCode}`, tone: "bad" };
    case "stopped":
      return { text: "stopped", tone: "warn" };
    case "time_limit":
      return { text: `time limit · ${(run.durationMs / 1000).toFixed(1)} s`, tone: "warn" };
    case "output_limit":
      return { text: "output limit", tone: "warn" };
    case "crashed":
      return { text: `crashed · ${run.signalName ?? (run.signal === null ? "signal" : `signal ${run.signal}`)}`, tone: "bad" };
  }
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** Append ``text`` to an ordered output block, in the span of its stream (a new one when the stream changes). */
function appendChunk(block: HTMLElement, stream: StreamName, text: string): void {
  const last = block.lastElementChild;
  if (last instanceof HTMLElement && last.classList.contains(stream)) last.textContent += text;
  else block.append(h("span", { class: stream }, text));
}

function outputBlock(run: RunRecord): HTMLElement | null {
  // Records from runners that cannot tell the order (the server's) show stdout, then stderr.
  const chunks: OutputChunk[] = run.output ?? [
    ["stdout", run.stdout],
    ["stderr", run.stderr],
  ];
  const block = h("pre", { class: "stream output" });
  for (const [stream, text] of chunks) if (text) appendChunk(block, stream, text);
  return block.childElementCount ? block : null;
}

function runCard(run: RunRecord): HTMLElement {
  const s = status(run);
  const who = run.by?.name ?? "Server";
  const body = h("div", { class: "run-body" });
  if (run.compileOutput && run.compileOutput !== run.stderr) {
    body.append(h("pre", { class: "stream compile" }, run.compileOutput));
  }
  const output = outputBlock(run);
  if (output) body.append(output);
  if (!output && !run.compileOutput) body.append(h("div", { class: "stream empty" }, "(no output)"));
  if (run.outputTruncated) body.append(h("div", { class: "stream note" }, "Output was cut at 64 KB."));
  const time = run.startedAt ? new Date(run.startedAt) : null;
  return h(
    "article",
    { class: "run", "data-run-id": run.id, "data-status": s.tone, "data-outcome": run.outcome },
    h(
      "header",
      { class: "run-head" },
      h("span", { class: "dot", style: `background:${safeColor(run.by?.color)}` }),
      h("span", { class: "run-who" }, who),
      h("span", { class: "run-lang" }, languageInfo(run.language).label + (run.source === "server" ? " · server" : "")),
      h("span", { class: `run-status ${s.tone}` }, s.text),
      h("span", { class: "run-time", title: time?.toLocaleString() ?? "" }, duration(run.durationMs)),
    ),
    body,
  );
}

export class OutputPanel {
  readonly el: HTMLElement;
  private readonly list: HTMLElement;
  private live: HTMLElement | null = null;
  private liveOut: HTMLElement | null = null;
  private livePhase: HTMLElement | null = null;

  constructor(private readonly runs: Y.Array<Record<string, unknown>>) {
    this.list = h("div", { class: "runs", "aria-live": "polite" });
    this.el = this.list;
    runs.observe(() => this.render());
    this.render();
  }

  clearView(): void {
    this.list.replaceChildren();
    this.render();
  }

  private render(): void {
    const stick = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const cards = this.runs.toArray().flatMap((raw) => {
      const run = parseRun(raw);
      return run ? [runCard(run)] : [];
    });
    if (cards.length === 0 && !this.live) {
      this.list.replaceChildren(
        h(
          "div",
          { class: "runs-empty" },
          h("strong", {}, "No runs yet"),
          h("span", {}, "Press Run or Ctrl+Enter. Everyone in the session sees the output here."),
        ),
      );
      return;
    }
    this.list.replaceChildren(...cards);
    if (this.live) this.list.append(this.live);
    if (stick || this.live) this.list.scrollTop = this.list.scrollHeight;
  }

  /** Show the run this browser started, streaming, until its result lands in the shared list. */
  beginLive(who: string, color: string, language: string): void {
    this.liveOut = h("pre", { class: "stream output" });
    this.livePhase = h("span", { class: "run-status running" }, "Starting…");
    this.live = h(
      "article",
      { class: "run live" },
      h(
        "header",
        { class: "run-head" },
        h("span", { class: "dot", style: `background:${safeColor(color)}` }),
        h("span", { class: "run-who" }, who),
        h("span", { class: "run-lang" }, languageInfo(language).label),
        this.livePhase,
      ),
      h("div", { class: "run-body" }, this.liveOut),
    );
    this.render();
  }

  livePhaseText(text: string): void {
    if (this.livePhase) this.livePhase.textContent = text;
  }

  liveOutput(stream: StreamName, text: string): void {
    if (!this.liveOut) return;
    appendChunk(this.liveOut, stream, text);
    this.list.scrollTop = this.list.scrollHeight;
  }

  endLive(): void {
    this.live = null;
    this.liveOut = this.livePhase = null;
    this.render();
  }
}
