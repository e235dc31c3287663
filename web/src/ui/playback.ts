// Playback of a session's history, over the editor: a read-only editor showing the code at a point of the history
// (each author's text in their colour, the last change marked), and under it the timeline: every change drawn at its
// time in its author's colour, marks for runs and language switches, play and pause at 1x to 16x, idle gaps skipped
// or not, step by change, drag to any point. The output panel shows the runs as they were then. Loaded on first use.
//
// Where the page holds the owner key it plays from the export's Yjs updates, replayed here (no request while
// playing); elsewhere (a participant, where the server allows) it asks the server for each point, a few ahead.
import { ChangeSet, RangeSetBuilder, StateEffect, StateField, type Extension } from "@codemirror/state";
import { Decoration, EditorView, lineNumbers, type DecorationSet } from "@codemirror/view";
import { EditorState, Compartment } from "@codemirror/state";
import { syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";
import * as Y from "yjs";
import { api, ApiError } from "../api";
import type { HistoryChange, HistoryPerson } from "../contracts.gen";
import { languageSupport, themeExtension } from "../editor";
import { isLanguage, languageInfo, type Language } from "../languages";
import { Replay, type AuthorSpan, type Frame, type TextDelta } from "../replay";
import { duration, indexAt, indexAtX, Player, playClock, SPEEDS, step, xOf, type Clock } from "../timeline";
import { h, safeColor } from "./dom";
import { OutputPanel } from "./output";
import type { ResolvedTheme } from "./settings";
import "./playback.css";

export interface PlaybackHost {
  sessionId: string;
  /** The owner key (restore, and the export to play from); null for a participant. */
  ownerKey: string | null;
  /** The editor pane, and the live editor in it (hidden while playing back). */
  pane: HTMLElement;
  liveEditor: HTMLElement;
  /** The output panel's section and its live list of runs (hidden while playing back). */
  outputSection: HTMLElement;
  liveOutput: HTMLElement;
  theme: () => ResolvedTheme;
  fontSize: () => number;
  /** The language when the document held none yet. */
  language: () => Language;
  notice: (text: string, ms?: number) => void;
  /** Back to the live session (the view is gone). */
  closed: () => void;
}

export interface Playback {
  close(): void;
}

const SERVER_COLOR = "#8a93a6";
const AHEAD = 12; // points asked for ahead of the one shown, when asking the server
const AT_ONCE = 3; // requests at once, then
const CACHED = 400; // points kept, then

/** Where the frames come from: the local replay (at once) or the server (soon). */
interface Source {
  /** The frame of change ``index`` if it is at hand, else null (and it is being fetched). */
  frame(index: number): Frame | null;
  close(): void;
}

class LocalSource implements Source {
  constructor(private readonly replay: Replay) {}
  frame(index: number): Frame {
    return this.replay.seek(index);
  }
  close(): void {}
}

/** Points asked of the server (`GET …/history/at?index=`), a few at a time, the next ones ahead of need. */
class RemoteSource implements Source {
  private readonly cache = new Map<number, Frame>();
  private readonly asked = new Set<number>();
  private readonly abort = new AbortController();
  private running = 0;
  private wanted = 0;

  constructor(
    private readonly sessionId: string,
    private readonly total: number,
    private readonly ready: () => void,
  ) {}

  frame(index: number): Frame | null {
    this.wanted = index;
    this.pump();
    return this.cache.get(index) ?? null;
  }

  private pump(): void {
    for (let i = this.wanted; i < Math.min(this.total, this.wanted + AHEAD) && this.running < AT_ONCE; i++) {
      if (this.cache.has(i) || this.asked.has(i)) continue;
      this.asked.add(i);
      this.running += 1;
      api
        .historyAt(this.sessionId, i, this.abort.signal)
        .then((point) => {
          this.cache.set(i, { ...point, inserted: [] });
          // Bounded: the points furthest from the one wanted go first.
          if (this.cache.size > CACHED) {
            const far = [...this.cache.keys()].sort((a, b) => Math.abs(b - this.wanted) - Math.abs(a - this.wanted));
            for (const key of far.slice(0, this.cache.size - CACHED)) this.cache.delete(key);
          }
          if (i === this.wanted) this.ready();
        })
        .catch(() => undefined)
        .finally(() => {
          this.asked.delete(i);
          this.running -= 1;
          if (!this.abort.signal.aborted) this.pump();
        });
    }
  }

  close(): void {
    this.abort.abort();
  }
}

// --- The read-only editor's marks: each author's text, and what the last change inserted ------------------------

const setMarks = StateEffect.define<DecorationSet>();
const marks = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update: (value, tr) => {
    for (const effect of tr.effects) if (effect.is(setMarks)) return effect.value;
    return value.map(tr.changes);
  },
  provide: (field) => EditorView.decorations.from(field),
});

function authorMark(color: string): Decoration {
  return Decoration.mark({ attributes: { style: `background-color: ${color}2e; box-shadow: inset 0 -2px ${color}99` } });
}
const lastMark = Decoration.mark({ class: "pb-last" });

/** Yjs text deltas, one after the other, as one CodeMirror change set from a document of ``length``. */
function changesOf(deltas: readonly TextDelta[], length: number): ChangeSet | null {
  let set = ChangeSet.empty(length);
  for (const delta of deltas) {
    const specs: { from: number; to?: number; insert?: string }[] = [];
    let at = 0;
    for (const d of delta) {
      if (d.retain !== undefined) at += d.retain;
      else if (d.delete !== undefined) {
        specs.push({ from: at, to: at + d.delete });
        at += d.delete;
      } else if (typeof d.insert === "string") specs.push({ from: at, insert: d.insert });
      else return null; // an embed: not text
    }
    if (at > set.newLength) return null;
    set = set.compose(ChangeSet.of(specs, set.newLength));
  }
  return set;
}

/** The smallest replacement turning ``a`` into ``b``: a common start and end kept. */
function diff(a: string, b: string): { from: number; to: number; insert: string } | null {
  if (a === b) return null;
  let start = 0;
  const most = Math.min(a.length, b.length);
  while (start < most && a.charCodeAt(start) === b.charCodeAt(start)) start++;
  let end = 0;
  while (end < most - start && a.charCodeAt(a.length - 1 - end) === b.charCodeAt(b.length - 1 - end)) end++;
  return { from: start, to: a.length - end, insert: b.slice(start, b.length - end) };
}

function kindText(change: HistoryChange, name: string): string {
  if (change.index === 0) return "The session started";
  switch (change.kind) {
    case "run":
      return `${name} ran the code`;
    case "language":
      return `${name} switched the language`;
    case "title":
      return `${name} renamed the session`;
    case "restore":
      return "The owner restored an earlier version";
    default:
      return change.inserted || change.deleted ? `${name} typed` : `${name} changed the session`;
  }
}

async function wholeTimeline(sessionId: string, signal: AbortSignal): Promise<{ changes: HistoryChange[]; people: HistoryPerson[] }> {
  const changes: HistoryChange[] = [];
  let after: number | null = null;
  let people: HistoryPerson[];
  for (;;) {
    const page = await api.history(sessionId, after, signal);
    changes.push(...page.changes);
    people = page.participants;
    if (page.next === null || page.changes.length === 0) break;
    after = page.next;
  }
  return { changes, people };
}

/** Open playback over the editor; resolves once the history is loaded and shown (rejects when it cannot be read). */
export async function openPlayback(host: PlaybackHost): Promise<Playback> {
  const abort = new AbortController();
  const { changes, people } = await wholeTimeline(host.sessionId, abort.signal);
  if (changes.length === 0) throw new Error("This session has no history yet.");
  const total0 = changes.length;

  // The owner plays from the original updates; the export is read once, after the timeline, so it holds every change
  // listed (and perhaps newer ones, not played).
  let replay: Replay | null = null;
  if (host.ownerKey) {
    try {
      const exported = await api.exportSession(host.sessionId, host.ownerKey, abort.signal);
      const first = exported.history[0];
      if (exported.history.length >= total0 && first && Date.parse(first.at) === Date.parse(changes[0]!.at)) {
        replay = new Replay(exported.base, exported.history.slice(0, total0));
      }
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      // The points are asked of the server instead.
    }
  }

  const colors = new Map<string | null, string>([[null, SERVER_COLOR]]);
  const names = new Map<string | null, string>([[null, "Server"]]);
  for (const p of people) {
    colors.set(p.id, safeColor(p.color));
    names.set(p.id, p.name);
  }
  const nameOf = (author: string | null): string => names.get(author) ?? "Someone";
  const decorations = new Map<string | null, Decoration>();
  const markOf = (author: string | null): Decoration => {
    let mark = decorations.get(author);
    if (!mark) decorations.set(author, (mark = authorMark(colors.get(author) ?? SERVER_COLOR)));
    return mark;
  };

  const times = changes.map((c) => Date.parse(c.at));
  let skipIdle = true;
  let clock: Clock = playClock(times, skipIdle);
  const player = new Player(clock);
  let shown = -1;
  let wanted = total0 - 1;
  let raf = 0;
  let lastRuns: unknown = null;

  // --- Layout -------------------------------------------------------------------------------------------------
  const status = h("span", { class: "pb-status", id: "playback-status" });
  const restoreButton = host.ownerKey
    ? h("button", { class: "button small", id: "playback-restore", type: "button", title: "Put the code back as it was at this point, for everyone" }, "Restore this version")
    : null;
  const closeButton = h(
    "button",
    { class: "button small primary", id: "playback-close", type: "button", title: "Back to the live session (Escape)" },
    "Back to live",
  );
  const codeHost = h("div", { class: "pb-code", id: "playback-code" });
  const playButton = h("button", { class: "button small pb-play", id: "playback-play", type: "button", "aria-label": "Play", title: "Play (Space)" }, "▶ Play");
  const prevButton = h("button", { class: "button small ghost", id: "playback-prev", type: "button", "aria-label": "Previous change", title: "Previous change (Left)" }, "‹");
  const nextButton = h("button", { class: "button small ghost", id: "playback-next", type: "button", "aria-label": "Next change", title: "Next change (Right)" }, "›");
  const speedSelect = h(
    "select",
    { id: "playback-speed", class: "pb-speed", "aria-label": "Speed" },
    ...SPEEDS.map((s) => h("option", { value: String(s) }, `${s}x`)),
  );
  speedSelect.value = "4";
  player.speed(performance.now(), 4);
  const skipInput = h("input", { type: "checkbox", id: "playback-skip-idle", checked: skipIdle });
  const clockText = h("span", { class: "pb-clock", id: "playback-clock" });
  const canvas = h("canvas", { class: "pb-ticks", "aria-hidden": "true" });
  const head = h("div", { class: "pb-head", "aria-hidden": "true" });
  const timeline = h(
    "div",
    {
      class: "pb-timeline",
      id: "playback-timeline",
      role: "slider",
      tabindex: 0,
      "aria-label": "Playback position",
      "aria-valuemin": 0,
      "aria-valuemax": total0 - 1,
    },
    canvas,
    head,
  );
  const legend = h(
    "ul",
    { class: "pb-legend", id: "playback-authors", "aria-label": "Authors" },
    ...[...new Set(changes.map((c) => c.author))].map((author) =>
      h("li", {}, h("span", { class: "dot", style: `background:${colors.get(author) ?? SERVER_COLOR}` }), nameOf(author)),
    ),
    h("li", { class: "pb-key" }, h("span", { class: "pb-key-run" }), "run"),
    h("li", { class: "pb-key" }, h("span", { class: "pb-key-lang" }), "language"),
  );
  const view = h(
    "section",
    { class: "playback", id: "playback", "aria-label": "Playback of the session's history", "data-source": replay ? "local" : "server" },
    h(
      "div",
      { class: "pb-bar" },
      h("strong", { class: "pb-title", id: "playback-title" }, "Playback"),
      status,
      h("span", { class: "spacer" }),
      restoreButton,
      closeButton,
    ),
    codeHost,
    h(
      "div",
      { class: "pb-controls" },
      h(
        "div",
        { class: "pb-buttons" },
        prevButton,
        playButton,
        nextButton,
        speedSelect,
        h("label", { class: "pb-skip", for: skipInput.id }, skipInput, "Skip idle gaps"),
        h("span", { class: "spacer" }),
        clockText,
      ),
      timeline,
      legend,
    ),
  );

  // The output panel shows the runs as they were then.
  const scratch = new Y.Doc();
  const pastRuns = scratch.getArray<Record<string, unknown>>("runs");
  const pastOutput = new OutputPanel(pastRuns, null, ["No runs yet", "Nobody had run the code at this point."]);
  pastOutput.el.id = "playback-runs";
  pastOutput.el.setAttribute("aria-label", "Run output at this point");
  const outputNote = host.outputSection.querySelector("h2 .muted.small");
  const outputNoteText = outputNote?.textContent ?? "";

  const themeSlot = new Compartment();
  const languageSlot = new Compartment();
  const fontSlot = new Compartment();
  const code = new EditorView({
    parent: codeHost,
    state: EditorState.create({
      doc: "",
      extensions: [
        lineNumbers(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        EditorState.readOnly.of(true),
        EditorView.editable.of(false),
        EditorView.contentAttributes.of({ tabindex: "0", "aria-label": "Code at this point (read-only)" }),
        themeSlot.of(themeExtension(host.theme())),
        fontSlot.of(EditorView.editorAttributes.of({ style: `font-size: ${host.fontSize()}px` })),
        languageSlot.of([] as Extension),
        EditorView.theme({ "&": { height: "100%" }, ".cm-scroller": { fontFamily: "var(--mono)" } }),
        marks,
      ],
    }),
  });
  // Syntax highlighting rests while playing: the parser would go over every change of every frame (and text being
  // typed is mostly not yet valid code, which costs it most); the authors' colours stay.
  let language: Language | null = null;
  let highlighted = false;
  const highlight = (on: boolean): void => {
    const want = on ? language : null;
    code.dom.dataset.highlighted = String(on);
    if (!want) {
      if (highlighted) code.dispatch({ effects: languageSlot.reconfigure([]) });
      highlighted = false;
      return;
    }
    void languageSupport(want).then(
      (support) => {
        if (language !== want || player.playing || !open) return;
        code.dispatch({ effects: languageSlot.reconfigure(support) });
        highlighted = true;
      },
      () => undefined,
    );
  };
  const setLanguage = (next: Language): void => {
    if (next === language) return;
    language = next;
    code.dom.dataset.language = next;
    if (!player.playing) highlight(true);
  };
  // The theme follows the page's (Settings) while playing back.
  const themeWatch = new MutationObserver(() => code.dispatch({ effects: themeSlot.reconfigure(themeExtension(host.theme())) }));
  themeWatch.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });

  // --- Showing a point ----------------------------------------------------------------------------------------
  const source: Source = replay ? new LocalSource(replay) : new RemoteSource(host.sessionId, total0, () => show(wanted, true));

  function markSet(frame: Frame, inserted: readonly { from: number; to: number }[]): DecorationSet {
    const builder = new RangeSetBuilder<Decoration>();
    const length = frame.code.length;
    // Author spans and the last change's ranges, merged in order of their starts (the builder wants them sorted).
    const last = [...inserted].filter((r) => r.to > r.from && r.to <= length).sort((a, b) => a.from - b.from);
    let j = 0;
    const spans: AuthorSpan[] = frame.authors;
    for (const span of spans) {
      while (j < last.length && last[j]!.from < span.start) {
        builder.add(last[j]!.from, last[j]!.to, lastMark);
        j++;
      }
      if (span.end > span.start && span.end <= length) builder.add(span.start, span.end, markOf(span.author));
    }
    for (; j < last.length; j++) builder.add(last[j]!.from, last[j]!.to, lastMark);
    return builder.finish();
  }

  // The code scrolls to the last change when it is out of sight; while playing, at most every so often: people
  // typing in different places would otherwise throw the view from one to the other every frame (and each jump
  // costs CodeMirror a fresh layout of the lines it shows).
  let followed = 0;
  function follow(position: number | null): StateEffect<unknown>[] {
    if (position === null) return [];
    const now = performance.now();
    if (player.playing && now - followed < 700) return [];
    const inSight = code.visibleRanges.some((r) => r.from <= position && position <= r.to);
    if (inSight && code.visibleRanges.length) return [];
    followed = now;
    return [EditorView.scrollIntoView(position, { y: player.playing ? "center" : "nearest" })];
  }

  function describe(index: number): string {
    const change = changes[index]!;
    const when = new Date(change.at).toLocaleTimeString();
    return `${duration(clock.at[index]!)} of ${duration(clock.length)}, ${when}, ${kindText(change, nameOf(change.author))} (change ${index + 1} of ${total0})`;
  }

  /** Show change ``index`` (when its frame is at hand; a frame arriving later shows it then). */
  function show(index: number, force = false): void {
    wanted = index;
    if (index === shown && !force) return;
    const frame = source.frame(index);
    if (!frame) {
      view.dataset.loading = "true";
      return;
    }
    delete view.dataset.loading;
    // Following on from the frame shown, the replay's own edits (only what changed is redrawn; three people typing
    // in three places would make one replacement of nearly everything between them); else the smallest
    // replacement.
    const edits = frame.edits ? changesOf(frame.edits, code.state.doc.length) : null;
    const follows = edits !== null && edits.newLength === frame.code.length;
    const change = follows ? null : diff(code.state.doc.toString(), frame.code);
    // The local replay knows what the change inserted; from the server, what differs from the point shown before.
    const inserted = replay ? frame.inserted : change && change.insert ? [{ from: change.from, to: change.from + change.insert.length }] : [];
    const head = inserted[inserted.length - 1]?.to ?? change?.from ?? null;
    code.dispatch({
      changes: follows ? edits : (change ?? undefined),
      effects: [setMarks.of(markSet(frame, inserted)), ...follow(head === null ? null : Math.min(head, frame.code.length))],
    });
    const lang = frame.language && isLanguage(frame.language) ? frame.language : host.language();
    setLanguage(lang);
    if (frame.runs !== lastRuns) {
      lastRuns = frame.runs;
      scratch.transact(() => {
        pastRuns.delete(0, pastRuns.length);
        pastRuns.insert(0, frame.runs as Record<string, unknown>[]);
      });
    }
    shown = index;
    const changeNow = changes[index]!;
    timeline.setAttribute("aria-valuenow", String(index));
    timeline.setAttribute("aria-valuetext", describe(index));
    view.dataset.index = String(index);
    status.textContent = `${new Date(changeNow.at).toLocaleTimeString()} · ${kindText(changeNow, nameOf(changeNow.author))} · ${languageInfo(lang).label}`;
    clockText.textContent = `${duration(clock.at[index]!)} / ${duration(clock.length)}`;
    prevButton.disabled = index <= 0;
    nextButton.disabled = index >= total0 - 1;
  }

  // --- The timeline bar ---------------------------------------------------------------------------------------
  let width = 0;
  function draw(): void {
    const rect = canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    width = rect.width;
    canvas.width = Math.max(1, Math.round(rect.width * ratio));
    canvas.height = Math.max(1, Math.round(rect.height * ratio));
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, rect.width, rect.height);
    const styles = getComputedStyle(view);
    const base = rect.height - 4;
    ctx.fillStyle = styles.getPropertyValue("--line") || "#343a46";
    ctx.fillRect(0, base, rect.width, 1);
    // Each change a tick in its author's colour, taller for more characters; one per pixel column and author.
    const drawn = new Set<string>();
    for (let i = 0; i < total0; i++) {
      const c = changes[i]!;
      const x = Math.round(xOf(clock, clock.at[i]!, rect.width - 2)) + 1;
      const key = `${x}:${c.author}:${c.kind}`;
      if (drawn.has(key)) continue;
      drawn.add(key);
      const size = c.inserted + c.deleted;
      const tall = Math.min(base - 10, 6 + Math.log2(1 + size) * 3);
      ctx.fillStyle = colors.get(c.author) ?? SERVER_COLOR;
      ctx.fillRect(x - 0.5, base - tall, 1.5, tall);
    }
    // Runs and language switches: marks along the top.
    for (let i = 0; i < total0; i++) {
      const c = changes[i]!;
      if (c.kind !== "run" && c.kind !== "language" && c.kind !== "restore") continue;
      const x = xOf(clock, clock.at[i]!, rect.width - 2) + 1;
      ctx.fillStyle = c.kind === "run" ? styles.getPropertyValue("--ok") || "#3fb97a" : styles.getPropertyValue("--warn") || "#e8b04a";
      ctx.beginPath();
      if (c.kind === "run") {
        ctx.moveTo(x - 4, 1);
        ctx.lineTo(x + 4, 1);
        ctx.lineTo(x, 8);
      } else {
        ctx.moveTo(x, 0);
        ctx.lineTo(x + 4, 4);
        ctx.lineTo(x, 8);
        ctx.lineTo(x - 4, 4);
      }
      ctx.fill();
    }
  }

  function placeHead(t: number): void {
    head.style.transform = `translateX(${xOf(clock, t, Math.max(0, width - 2)) + 1}px)`;
  }

  // --- Playing ------------------------------------------------------------------------------------------------
  // What each frame of playing costs here, for a benchmark that asks (it sets `window.cclPlaybackWork` to an array).
  function frameTick(now: number): void {
    raf = 0;
    const work = (window as { cclPlaybackWork?: number[] }).cclPlaybackWork;
    const began = work ? performance.now() : 0;
    const t = player.time(now);
    placeHead(t);
    show(indexAt(clock, t));
    if (work && work.length < 100_000) work.push(performance.now() - began);
    if (player.ended(now)) {
      stop(now);
      return;
    }
    raf = requestAnimationFrame(frameTick);
  }

  function setPlaying(playing: boolean): void {
    playButton.textContent = playing ? "Pause" : "▶ Play";
    playButton.setAttribute("aria-label", playing ? "Pause" : "Play");
    playButton.title = playing ? "Pause (Space)" : "Play (Space)";
    view.dataset.playing = String(playing);
  }

  function play(now = performance.now()): void {
    if (player.playing) return;
    player.play(now, shown >= total0 - 1 ? 0 : clock.at[Math.max(0, shown)]!);
    setPlaying(true);
    highlight(false);
    if (!raf) raf = requestAnimationFrame(frameTick);
  }

  function stop(now = performance.now()): void {
    if (player.playing) player.pause(now);
    if (raf) cancelAnimationFrame(raf);
    raf = 0;
    setPlaying(false);
    highlight(true);
    // Paused on a change: the clock sits on it, so Play goes on from what is shown.
    if (shown >= 0) player.seek(now, clock.at[shown]!);
  }

  function seek(index: number): void {
    const now = performance.now();
    const i = step(index, 0, total0);
    player.seek(now, clock.at[i]!);
    placeHead(clock.at[i]!);
    show(i);
  }

  function stepBy(by: number): void {
    stop();
    seek(step(shown, by, total0));
  }

  // --- Input --------------------------------------------------------------------------------------------------
  playButton.addEventListener("click", () => (player.playing ? stop() : play()));
  prevButton.addEventListener("click", () => stepBy(-1));
  nextButton.addEventListener("click", () => stepBy(1));
  speedSelect.addEventListener("change", () => player.speed(performance.now(), Number(speedSelect.value)));
  skipInput.addEventListener("change", () => {
    skipIdle = skipInput.checked;
    clock = playClock(times, skipIdle);
    player.reclock(performance.now(), clock, shown);
    draw();
    placeHead(clock.at[Math.max(0, shown)]!);
    if (shown >= 0) show(shown, true);
  });

  let dragging = false;
  const pointAt = (event: PointerEvent): number => {
    const rect = canvas.getBoundingClientRect();
    return indexAtX(clock, event.clientX - rect.left - 1, rect.width - 2);
  };
  timeline.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    timeline.focus();
    timeline.setPointerCapture(event.pointerId);
    dragging = true;
    stop();
    seek(pointAt(event));
  });
  timeline.addEventListener("pointermove", (event) => {
    if (dragging) seek(pointAt(event));
  });
  const endDrag = (event: PointerEvent): void => {
    if (!dragging) return;
    dragging = false;
    if (timeline.hasPointerCapture(event.pointerId)) timeline.releasePointerCapture(event.pointerId);
  };
  timeline.addEventListener("pointerup", endDrag);
  timeline.addEventListener("pointercancel", endDrag);
  timeline.addEventListener("keydown", (event) => {
    const keys: Record<string, () => void> = {
      Home: () => (stop(), seek(0)),
      End: () => (stop(), seek(total0 - 1)),
      PageUp: () => stepBy(-10),
      PageDown: () => stepBy(10),
      ArrowUp: () => stepBy(1),
      ArrowDown: () => stepBy(-1),
    };
    const act = keys[event.key];
    if (!act) return;
    event.preventDefault();
    act();
  });

  // Page-wide keys while playing back: Space plays or pauses, Left and Right step, Escape goes back to live. Fields,
  // lists and buttons keep their own keys; so does an open dialog.
  const onKey = (event: KeyboardEvent): void => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target instanceof HTMLElement ? event.target : null;
    if (target?.closest("dialog")) return;
    const typing = Boolean(target && (target.isContentEditable || target.closest("input, textarea, select")));
    if (event.key === "Escape") {
      if (target?.closest("select")) return;
      event.preventDefault();
      close();
      return;
    }
    if (typing && target !== skipInput) return;
    if (event.key === " " && (!target?.closest("button, input") || target === timeline)) {
      event.preventDefault();
      if (player.playing) stop();
      else play();
    } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && !target?.closest(".cm-editor, input")) {
      event.preventDefault();
      stepBy(event.key === "ArrowLeft" ? -1 : 1);
    }
  };
  document.addEventListener("keydown", onKey);

  restoreButton?.addEventListener("click", () => {
    if (!host.ownerKey || shown < 0) return;
    const index = shown;
    const when = new Date(changes[index]!.at).toLocaleString();
    if (!window.confirm(`Restore the code as it was at ${when} (change ${index + 1} of ${total0})? Everyone's editor gets it as a new change; the history keeps everything.`)) return;
    stop();
    restoreButton.disabled = true;
    api.restore(host.sessionId, host.ownerKey, index).then(
      () => {
        close();
        host.notice(`The code is back as it was at ${when}.`, 5000);
      },
      (err: unknown) => {
        restoreButton.disabled = false;
        host.notice(`Not restored: ${err instanceof ApiError || err instanceof Error ? err.message : String(err)}`);
      },
    );
  });

  let open = true;
  function close(): void {
    if (!open) return;
    open = false;
    if (raf) cancelAnimationFrame(raf);
    raf = 0;
    abort.abort();
    source.close();
    document.removeEventListener("keydown", onKey);
    resize.disconnect();
    themeWatch.disconnect();
    code.destroy();
    scratch.destroy();
    view.remove();
    pastOutput.el.remove();
    host.liveEditor.hidden = false;
    host.liveOutput.hidden = false;
    if (outputNote) outputNote.textContent = outputNoteText;
    delete host.outputSection.dataset.playback;
    delete host.pane.dataset.playback;
    host.closed();
  }
  closeButton.addEventListener("click", close);

  // --- In place -----------------------------------------------------------------------------------------------
  host.liveEditor.hidden = true;
  host.pane.dataset.playback = "true";
  host.pane.append(view);
  host.liveOutput.hidden = true;
  host.liveOutput.after(pastOutput.el);
  host.outputSection.dataset.playback = "true";
  if (outputNote) outputNote.textContent = "as it was at this point";
  const resize = new ResizeObserver(() => {
    draw();
    placeHead(player.time(performance.now()));
  });
  resize.observe(timeline);
  setPlaying(false);
  draw();
  seek(total0 - 1);
  timeline.focus();
  return { close };
}
