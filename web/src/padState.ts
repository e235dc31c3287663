// The session page's state: what the toolbar, the connection badge and the banner show, as one object changed
// only through named transitions. The views subscribe and render from a snapshot; nothing here touches the DOM,
// so the rules (when Run is allowed, what a close means) are unit-tested in web/test.
import type { CollabStatus } from "./collab";
import { CLOSE, type Language, SESSION_DELETED } from "./contracts.gen";

export interface PadSnapshot {
  readonly readOnly: boolean;
  readonly link: CollabStatus;
  readonly language: Language;
  readonly title: string;
  /** A run of this page is in progress (from Run until its record is written). */
  readonly running: boolean;
  /** The session owner turned running off (the server's answer; the last known one when it is unreachable). */
  readonly executionOff: boolean;
  /** Where the session's workspace policy lets code run: nowhere, in browsers only, or also on the server. */
  readonly executionPolicy: ExecutionPolicy;
  /** Languages the server's sandbox runs here (empty: none, or the server does not run code). */
  readonly serverLanguages: ReadonlySet<string>;
  /** The live connection was closed for good; the page stops editing. */
  readonly closed: Closed | null;
  /** This page's owner is deleting the session (from the confirmation until the page leaves, or it fails). */
  readonly deleting: boolean;
  /** The session owner ended the session: everyone reads, nobody edits, until the owner reopens it. */
  readonly ended: boolean;
}

export type Closed =
  | { kind: "rejoin" } // the token is no longer valid: join again (the name is remembered)
  | { kind: "gone"; deleted: boolean } // the session no longer exists (deleted: while this page had it open)
  | { kind: "removed" } // the session owner removed this participant (its token no longer works)
  | { kind: "frozen"; message: string }; // anything else: keep the code on screen, read-only, and say why

export type ExecutionPolicy = "none" | "browser" | "sandbox";

export const OFF_NOTE = "The session owner turned off running code in this session.";
export const POLICY_NONE_NOTE = "This session's policy does not allow running code.";
export const ENDED_NOTE = "The session owner ended this session. The code stays here to read; nobody can edit or run it.";
export const ENDED_OWNER_NOTE = "You ended this session: everyone sees the code read-only. Reopen it to let them edit again.";
export const REMOVED_NOTE =
  "The session owner removed you from this session. Your live connection was closed and your access ended; the code stays on screen, read-only.";
export const POLICY_BROWSER_NOTE = "This session's policy runs code only in browsers, and this language needs the server.";

/** What the run controls show, from a snapshot and the runners' own verdict on a language. */
export interface RunControls {
  runDisabled: boolean;
  stopDisabled: boolean;
  /** The note beside the controls ("" hides it). */
  note: string;
  runTitle: string;
  showTypeErrors: boolean;
  /** The offer to run a Python program on the server stays only while the language is Python. */
  keepServerOffer: boolean;
}

export function runControls(s: PadSnapshot, unavailable: (language: Language) => string | null): RunControls {
  // The workspace's rule first (nobody in the session can change it), then the owner's switch, then the runner.
  const why =
    s.executionPolicy === "none" ? POLICY_NONE_NOTE : s.executionOff ? OFF_NOTE : policyNote(s, unavailable(s.language));
  return {
    runDisabled: s.running || s.readOnly || s.ended || why !== null || s.closed !== null,
    stopDisabled: !s.running,
    // An ended session says so in its banner; the note would only repeat it.
    note: s.readOnly || s.ended ? "" : (why ?? ""),
    runTitle: s.readOnly ? "Viewers cannot run code" : s.ended ? "The session has ended" : (why ?? "Run (Ctrl+Enter)"),
    showTypeErrors: !s.readOnly && s.language === "typescript",
    keepServerOffer: s.language === "python",
  };
}

/** A runner's own reason, or the policy's when the server could run the language but the policy keeps code off it. */
function policyNote(s: PadSnapshot, why: string | null): string | null {
  const kept = why !== null && s.executionPolicy !== "sandbox" && s.serverLanguages.has(s.language);
  return kept ? POLICY_BROWSER_NOTE : why;
}

/** The server languages a page may use: none where the workspace runs code only in browsers. */
export function usableServerLanguages(s: PadSnapshot): ReadonlySet<string> {
  return s.executionPolicy === "sandbox" ? s.serverLanguages : new Set();
}

/** The connection badge: its words and its state (a CSS hook). */
export function linkText(s: CollabStatus): { text: string; state: string } {
  if (s.link === "connected" && s.synced) return { text: "Connected", state: "connected" };
  if (s.pending) return { text: "Offline · edits pending", state: "pending" };
  if (s.link === "connected" || s.link === "connecting") return { text: "Reconnecting…", state: "connecting" };
  return { text: "Offline", state: "offline" };
}


/** Whether this page may change the shared document now (the editor, the title, the language). */
export function canEdit(s: PadSnapshot): boolean {
  return !s.readOnly && !s.ended && s.closed === null;
}

/** The banner's text ("" hides it): a closed connection first (it is final), then an ended session. */
export function bannerText(s: PadSnapshot, owner: boolean): string {
  if (s.closed?.kind === "removed") return REMOVED_NOTE;
  if (s.closed?.kind === "frozen") return s.closed.message;
  if (s.ended) return owner ? ENDED_OWNER_NOTE : ENDED_NOTE;
  return "";
}

/** What a close of the live connection that will not be retried means for the page. */
export function closeMeaning(code: number, reason: string): Closed {
  if (code === CLOSE.UNAUTHORIZED) return { kind: "rejoin" };
  if (code === CLOSE.FORBIDDEN) return { kind: "removed" };
  if (code === CLOSE.NOT_FOUND) return { kind: "gone", deleted: reason === SESSION_DELETED };
  return {
    kind: "frozen",
    message:
      code === CLOSE.TOO_LARGE
        ? "Your last change made the code larger than this server accepts; it was not saved. Reload to continue."
        : `The server closed the live connection (${reason || code}). Reload to continue.`,
  };
}

type Listener = (now: PadSnapshot, before: PadSnapshot) => void;

export class PadState {
  private current: PadSnapshot;
  private readonly listeners = new Set<Listener>();

  constructor(initial: { readOnly: boolean; language: Language; title: string; ended?: boolean }) {
    this.current = {
      ...initial,
      ended: initial.ended ?? false,
      link: { link: "connecting", synced: false, pending: false },
      running: false,
      executionOff: false,
      executionPolicy: "sandbox",
      serverLanguages: new Set(),
      closed: null,
      deleting: false,
    };
  }

  get snapshot(): PadSnapshot {
    return this.current;
  }

  /** ``listener`` now and on every change; returns the unsubscribe. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    listener(this.current, this.current);
    return () => this.listeners.delete(listener);
  }

  // --- transitions ------------------------------------------------------------------------------------------

  connection(link: CollabStatus): void {
    this.set({ link });
  }

  /** The shared document says the language and the title are these (a title that is not one is ignored). */
  meta(language: Language, title: unknown): void {
    this.set(typeof title === "string" && title ? { language, title } : { language });
  }

  /** Returns false when a run may not start now (one is running, a viewer, the session ended, or the connection
   * closed). */
  runStarted(): boolean {
    const s = this.current;
    if (s.running || s.readOnly || s.ended || s.closed !== null) return false;
    this.set({ running: true });
    return true;
  }

  runEnded(): void {
    this.set({ running: false });
  }

  /** The session's settings: the owner's switch, and the workspace's policy (absent from older servers). */
  executionSettings(enabled: boolean, policy: ExecutionPolicy = "sandbox"): void {
    this.set({ executionOff: !enabled, executionPolicy: policy });
  }

  serverRuns(languages: Iterable<string>): void {
    this.set({ serverLanguages: new Set(languages) });
  }

  /** Returns false when a deletion may not start now (one is under way, or the session is gone already). */
  deletionStarted(): boolean {
    const s = this.current;
    if (s.deleting || s.closed?.kind === "gone") return false;
    this.set({ deleting: true });
    return true;
  }

  deletionFailed(): void {
    this.set({ deleting: false });
  }

  /** The server says the owner ended the session (or reopened it): from its answer, the page's load, or the live
   * connection's auth message. */
  sessionEnded(ended: boolean): void {
    this.set({ ended });
  }

  closedFor(code: number, reason: string): Closed {
    const closed = closeMeaning(code, reason);
    this.set({ closed });
    return closed;
  }

  private set(change: Partial<PadSnapshot>): void {
    const before = this.current;
    const next = { ...before, ...change };
    if ((Object.keys(change) as (keyof PadSnapshot)[]).every((k) => Object.is(before[k], next[k]))) return;
    this.current = next;
    for (const listener of this.listeners) listener(next, before);
  }
}
