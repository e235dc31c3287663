// The shared output panel: every run of the session (from the document's "runs" array), newest last, plus the
// live output of the runs in progress: this browser's own, and the others' from their awareness states.
import type { Awareness } from "y-protocols/awareness";
import type * as Y from "yjs";
import { languageInfo } from "../languages";
import { LIVE_MAX_BYTES, parseLiveRun, type LivePhase, type LiveRunState } from "../liveRuns";
import { parseRun, type OutputChunk, type RunRecord, type StreamName } from "../runs";
import { h, safeColor } from "./dom";

const PHASE_TEXT: Record<LivePhase, string> = { loading: "Loading…", running: "Running…", stopping: "Stopping…" };

/** A run in progress on someone else's page, as their awareness state shows it. */
interface RemoteLive {
  id: string;
  card: HTMLElement;
  out: HTMLElement;
  phase: HTMLElement;
  /** UTF-16 units of the run's output received so far (the next piece should start here). */
  have: number;
  /** Characters shown; capped at LIVE_MAX_BYTES. */
  shown: number;
}

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

/** The input the run read, collapsed: it can be long, and the output is what people look at first. */
function inputBlock(run: RunRecord, open: Set<string>): HTMLElement | null {
  if (!run.stdin) return null;
  const lines = run.stdin.split("\n").length - (run.stdin.endsWith("\n") ? 1 : 0);
  const details = h(
    "details",
    { class: "run-input", open: open.has(run.id) },
    h("summary", {}, `Input · ${lines} line${lines === 1 ? "" : "s"}`),
    h("pre", { class: "stream stdin" }, run.stdin),
  );
  // Cards are rebuilt when the list changes: remember which inputs someone opened.
  details.addEventListener("toggle", () => {
    if (details.open) open.add(run.id);
    else open.delete(run.id);
  });
  return details;
}

function runCard(run: RunRecord, openInputs: Set<string>): HTMLElement {
  const s = status(run);
  const who = run.by?.name ?? "Server";
  const body = h("div", { class: "run-body" });
  const input = inputBlock(run, openInputs);
  if (input) body.append(input);
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

/** What a screen reader says when a run ends: "Run finished: ok, exit 0 (Ada, Python)". */
function announcement(run: RunRecord): string {
  const s = status(run);
  const result = run.outcome === "ok" ? "ok, exit 0" : run.outcome === "error" ? `error, ${s.text}` : s.text;
  return `Run finished: ${result} (${run.by?.name ?? "Server"}, ${languageInfo(run.language).label})`;
}

export class OutputPanel {
  readonly el: HTMLElement;
  /** A polite live region: the end of every run, this browser's or anyone else's, without the output itself. */
  readonly announcer = h("div", { class: "sr-only", id: "run-announcer", role: "status", "aria-live": "polite" });
  /** Off until the first sync has brought the session's past runs, which are not news. */
  announcing = false;
  private readonly list: HTMLElement;
  private live: HTMLElement | null = null;
  private liveOut: HTMLElement | null = null;
  private livePhase: HTMLElement | null = null;
  /** Runs in progress on the others' pages, by their awareness client id. */
  private readonly remote = new Map<number, RemoteLive>();
  /** Run ids whose input someone opened on this page. */
  private readonly openInputs = new Set<string>();
  /** Removes every run for everyone; shown to editors while the session allows it (see {@link setClearable}). */
  readonly clearButton = h(
    "button",
    { class: "button small ghost", id: "clear-output", type: "button", title: "Remove every run, for everyone", hidden: true },
    "Clear",
  );

  constructor(
    private readonly runs: Y.Array<Record<string, unknown>>,
    private readonly awareness: Awareness | null = null,
    /** What an empty list says: its heading, then a line. */
    private readonly empty: readonly [string, string] = ["No runs yet", "Press Run or Ctrl+Enter. Everyone in the session sees the output here."],
  ) {
    // Not a live region itself: every render rebuilds the list, which would read all of it out again. Focusable,
    // so the keyboard can scroll it.
    this.list = h("div", { class: "runs", id: "runs", tabindex: 0, role: "region", "aria-label": "Run output" });
    this.el = this.list;
    runs.observe((event) => {
      this.render();
      if (!this.announcing) return;
      const added = event.changes.delta.flatMap((d) => (Array.isArray(d.insert) ? d.insert : []));
      const last = added.length ? parseRun(added[added.length - 1]) : null;
      if (last) this.announce(announcement(last));
    });
    awareness?.on("change", ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }) => {
      let changed = false;
      for (const client of [...added, ...updated, ...removed]) changed = this.remoteChanged(client) || changed;
      if (changed) this.render();
    });
    this.render();
  }

  setClearable(clearable: boolean): void {
    this.clearButton.hidden = !clearable;
  }

  /** Follow one peer's `run` field; true when a live card appeared or went away. */
  private remoteChanged(client: number): boolean {
    if (!this.awareness || client === this.awareness.clientID) return false;
    const state = this.awareness.getStates().get(client) as { run?: unknown; user?: Record<string, unknown> } | undefined;
    const live = parseLiveRun(state?.run);
    const current = this.remote.get(client);
    if (!live) {
      this.remote.delete(client);
      return current !== undefined;
    }
    if (current && current.id === live.id) {
      this.applyRemote(current, live);
      return false;
    }
    const user = state?.user ?? {};
    const out = h("pre", { class: "stream output" });
    const phase = h("span", { class: "run-status running" });
    const card = h(
      "article",
      { class: "run live remote", "data-run-id": live.id },
      h(
        "header",
        { class: "run-head" },
        h("span", { class: "dot", style: `background:${safeColor(user.color)}` }),
        h("span", { class: "run-who" }, typeof user.name === "string" ? user.name : "Someone"),
        h("span", { class: "run-lang" }, languageInfo(live.language).label),
        phase,
      ),
      h("div", { class: "run-body" }, out),
    );
    const entry: RemoteLive = { id: live.id, card, out, phase, have: 0, shown: 0 };
    this.remote.set(client, entry);
    this.applyRemote(entry, live);
    return true;
  }

  /** Append what is new in a peer's latest state (states repeat: a renewal, a phase change). */
  private applyRemote(entry: RemoteLive, live: LiveRunState): void {
    const server = live.language === "java" || live.language === "cpp";
    entry.phase.textContent = server && live.phase === "running" ? "Running on the server…" : PHASE_TEXT[live.phase];
    let skip = entry.have - live.offset;
    const length = live.output.reduce((n, [, text]) => n + text.length, 0);
    if (live.offset + length <= entry.have) return;
    if (skip < 0) {
      // Output this page never got (it joined late, or the runner skipped ahead of a flood).
      this.appendRemote(entry, "stderr", entry.have === 0 ? "…\n" : "\n…\n");
      skip = 0;
    }
    for (const [stream, text] of live.output) {
      const part = skip >= text.length ? "" : text.slice(skip);
      skip = Math.max(0, skip - text.length);
      if (part) this.appendRemote(entry, stream, part);
    }
    entry.have = live.offset + length;
  }

  private appendRemote(entry: RemoteLive, stream: StreamName, text: string): void {
    const room = LIVE_MAX_BYTES - entry.shown;
    if (room <= 0) return;
    const part = text.length > room ? text.slice(0, room) : text;
    entry.shown += part.length;
    const stick = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    appendChunk(entry.out, stream, part);
    if (entry.shown >= LIVE_MAX_BYTES) {
      entry.card.querySelector(".run-body")?.append(h("div", { class: "stream note" }, "Live output stops at 64 KB; the full output follows when the run ends."));
    }
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }

  private announce(text: string): void {
    // The same words twice in a row (two identical runs) are only read again if the region changes in between.
    this.announcer.textContent = "";
    window.setTimeout(() => (this.announcer.textContent = text), 50);
  }

  clearView(): void {
    this.list.replaceChildren();
    this.render();
  }

  private render(): void {
    const stick = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const ended = new Set<string>();
    const cards = this.runs.toArray().flatMap((raw) => {
      const run = parseRun(raw);
      if (run) ended.add(run.id);
      return run ? [runCard(run, this.openInputs)] : [];
    });
    // A run's final card replaces its live one, whichever arrives first.
    const lives = [...this.remote.values()].filter((live) => !ended.has(live.id)).map((live) => live.card);
    if (cards.length === 0 && !this.live && lives.length === 0) {
      this.list.replaceChildren(
        h(
          "div",
          { class: "runs-empty" },
          h("strong", {}, this.empty[0]),
          h("span", {}, this.empty[1]),
        ),
      );
      return;
    }
    this.list.replaceChildren(...cards, ...lives);
    if (this.live) this.list.append(this.live);
    if (stick || this.live) this.list.scrollTop = this.list.scrollHeight;
  }

  /** Show the run this browser started, streaming, until its result lands in the shared list. */
  beginLive(who: string, color: string, language: string, id = ""): void {
    this.liveOut = h("pre", { class: "stream output" });
    this.livePhase = h("span", { class: "run-status running" }, "Starting…");
    this.live = h(
      "article",
      { class: "run live", "data-run-id": id },
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
