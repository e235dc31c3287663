// The shared output panel: every run of the session (from the document's "runs" array), newest last, plus the
// live output of the run this browser is doing right now.
import type * as Y from "yjs";
import { languageInfo } from "../languages";
import { parseRun, type RunRecord } from "../runs";
import { h, safeColor } from "./dom";

function status(run: RunRecord): { text: string; tone: "ok" | "bad" | "warn" } {
  if (run.timedOut) return { text: "timed out", tone: "warn" };
  if (run.signal !== null && run.exitCode === null) return { text: run.signal === 2 ? "stopped" : "killed", tone: "warn" };
  if (run.exitCode === 0) return { text: "exit 0", tone: "ok" };
  if (run.exitCode === null) return { text: "failed", tone: "bad" };
  return { text: `exit ${run.exitCode}`, tone: "bad" };
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function runCard(run: RunRecord): HTMLElement {
  const s = status(run);
  const who = run.by?.name ?? "Server";
  const body = h("div", { class: "run-body" });
  if (run.compileOutput && run.compileOutput !== run.stderr) {
    body.append(h("pre", { class: "stream compile" }, run.compileOutput));
  }
  if (run.stdout) body.append(h("pre", { class: "stream stdout" }, run.stdout));
  if (run.stderr) body.append(h("pre", { class: "stream stderr" }, run.stderr));
  if (!run.stdout && !run.stderr && !run.compileOutput) body.append(h("div", { class: "stream empty" }, "(no output)"));
  if (run.outputTruncated) body.append(h("div", { class: "stream note" }, "Output was cut at 64 KB."));
  const time = run.startedAt ? new Date(run.startedAt) : null;
  return h(
    "article",
    { class: "run", "data-run-id": run.id, "data-status": s.tone },
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
  private liveStdout: HTMLElement | null = null;
  private liveStderr: HTMLElement | null = null;
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
    this.liveStdout = h("pre", { class: "stream stdout" });
    this.liveStderr = h("pre", { class: "stream stderr" });
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
      h("div", { class: "run-body" }, this.liveStdout, this.liveStderr),
    );
    this.render();
  }

  livePhaseText(text: string): void {
    if (this.livePhase) this.livePhase.textContent = text;
  }

  liveOutput(stream: "stdout" | "stderr", text: string): void {
    const target = stream === "stdout" ? this.liveStdout : this.liveStderr;
    if (!target) return;
    target.textContent += text;
    this.list.scrollTop = this.list.scrollHeight;
  }

  endLive(): void {
    this.live = null;
    this.liveStdout = this.liveStderr = this.livePhase = null;
    this.render();
  }
}
