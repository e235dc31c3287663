// The owner's private notes, beside the session: saved while they are typed (the whole text with the version it was
// written on; a save another tab got in first is a 409, then the stored notes are shown again and the owner told),
// and following the owner's other tabs by a long poll. Never part of the shared document; built only on the owner's
// page, and loaded only there. The owner key travels in the X-Owner-Key header.
import { api, ApiError } from "../api";
import { h } from "./dom";
import "./notes.css";

const SAVE_AFTER_MS = 600;
const RETRY_MS = 3000;

export class NotesPanel {
  readonly el: HTMLElement;
  private readonly area: HTMLTextAreaElement;
  private readonly state: HTMLElement;
  private version = 0;
  /** The text last saved or loaded: typed changes differ from it. */
  private saved = "";
  private timer = 0;
  private saving = false;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly sessionId: string,
    private readonly ownerKey: string,
    private readonly notice: (text: string, ms?: number) => void,
  ) {
    this.area = h("textarea", {
      id: "notes",
      class: "notes",
      spellcheck: "true",
      placeholder: "Only you see these notes. They are saved as you type.",
      "aria-describedby": "notes-hint",
      disabled: true,
    });
    this.state = h("span", { class: "muted small notes-state", id: "notes-state", role: "status" }, "Loading…");
    this.el = h(
      "section",
      { class: "panel notes-panel", id: "notes-panel", "aria-labelledby": "notes-heading" },
      h(
        "h2",
        { id: "notes-heading" },
        h("label", { for: "notes" }, "Private notes"),
        h("span", { class: "muted small", id: "notes-hint" }, "only you see these"),
        this.state,
      ),
      this.area,
    );
    this.area.addEventListener("input", () => {
      this.show("Not saved yet");
      window.clearTimeout(this.timer);
      this.timer = window.setTimeout(() => {
        this.timer = 0;
        void this.save();
      }, SAVE_AFTER_MS);
    });
    // Leaving the field saves at once.
    this.area.addEventListener("blur", () => {
      if (this.area.value !== this.saved) {
        window.clearTimeout(this.timer);
        this.timer = 0;
        void this.save();
      }
    });
    window.addEventListener("pagehide", () => this.close());
  }

  private show(text: string): void {
    this.state.textContent = text;
  }

  /** Read the notes, then follow the other tabs' saves. */
  async start(): Promise<void> {
    try {
      const notes = await api.notes(this.sessionId, this.ownerKey, null, this.abort.signal);
      this.take(notes.text, notes.version, true);
      this.area.disabled = false;
    } catch (err) {
      if (!this.closed) this.show("Could not load the notes");
      if (err instanceof ApiError && err.status !== 0) return;
    }
    void this.follow();
  }

  /** A stored version: shown unless the owner is typing something newer here (their save settles it). */
  private take(text: string, version: number, force = false): void {
    if (!force && version === this.version) return;
    if (!force && this.area.value !== this.saved) return;
    const { selectionStart, selectionEnd } = this.area;
    const focused = document.activeElement === this.area;
    this.area.value = text;
    this.saved = text;
    this.version = version;
    if (focused) this.area.setSelectionRange(Math.min(selectionStart, text.length), Math.min(selectionEnd, text.length));
    this.show(version ? "Saved" : "");
  }

  private async follow(): Promise<void> {
    while (!this.closed) {
      const asked = performance.now();
      try {
        const notes = await api.notes(this.sessionId, this.ownerKey, this.version, this.abort.signal);
        if (notes.version !== this.version && !this.saving) this.take(notes.text, notes.version);
        // A server that does not wait answers at once: ask again a little later.
        if (notes.version === this.version && performance.now() - asked < 1000) await sleep(RETRY_MS);
      } catch (err) {
        if (this.closed) return;
        if (err instanceof ApiError && [401, 403, 404].includes(err.status)) return;
        await sleep(RETRY_MS);
      }
    }
  }

  private async save(): Promise<void> {
    if (this.saving || this.closed) return;
    const text = this.area.value;
    if (text === this.saved) return;
    this.saving = true;
    this.show("Saving…");
    try {
      const notes = await api.saveNotes(this.sessionId, this.ownerKey, text, this.version);
      this.version = notes.version;
      this.saved = notes.text;
      this.show(this.area.value === this.saved ? "Saved" : "Not saved yet");
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        // Another tab saved first: its notes are the stored ones. Shown here, and what was typed here is said.
        const lost = text;
        const notes = await api.notes(this.sessionId, this.ownerKey, null).catch(() => null);
        if (notes) this.take(notes.text, notes.version, true);
        this.notice(
          `Your notes were changed in another tab, so they were reloaded. What you had typed here was not saved${lost.length <= 80 ? `: “${lost}”` : "."}`,
          8000,
        );
      } else {
        this.show("Not saved");
        this.notice(`Your notes were not saved: ${err instanceof Error ? err.message : String(err)}`);
      }
    } finally {
      this.saving = false;
    }
    // Typed while the save was on its way: save that too.
    if (this.area.value !== this.saved && !this.timer) void this.save();
  }

  close(): void {
    this.closed = true;
    this.abort.abort();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}
