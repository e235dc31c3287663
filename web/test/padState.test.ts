import { describe, expect, it } from "vitest";
import { CLOSE, SESSION_DELETED } from "../src/contracts.gen";
import { sessionEndedBy } from "../src/authMessage";
import {
  bannerText,
  canEdit,
  closeMeaning,
  ENDED_NOTE,
  ENDED_OWNER_NOTE,
  linkText,
  OFF_NOTE,
  PadState,
  type PadSnapshot,
  POLICY_BROWSER_NOTE,
  POLICY_NONE_NOTE,
  REMOVED_NOTE,
  runControls,
  usableServerLanguages,
} from "../src/padState";

const available = (): string | null => null;

function pad(readOnly = false): PadState {
  return new PadState({ readOnly, language: "python", title: "Interview" });
}

describe("PadState", () => {
  it("tells its subscribers once now and once per real change", () => {
    const state = pad();
    const seen: PadSnapshot[] = [];
    state.subscribe((now) => seen.push(now));
    state.executionSettings(true); // already on: no change
    state.meta("python", "Interview"); // the same: no change
    state.meta("cpp", "");
    expect(seen.length).toBe(2);
    expect(seen[1]?.language).toBe("cpp");
    expect(seen[1]?.title).toBe("Interview"); // an empty title keeps the last one
  });

  it("allows one run at a time, never for a viewer or after a final close", () => {
    const state = pad();
    expect(state.runStarted()).toBe(true);
    expect(state.runStarted()).toBe(false);
    state.runEnded();
    expect(state.runStarted()).toBe(true);
    state.runEnded();
    state.closedFor(CLOSE.TOO_LARGE, "");
    expect(state.runStarted()).toBe(false);
    expect(pad(true).runStarted()).toBe(false);
  });

  it("deletes once at a time, and never a session already gone", () => {
    const state = pad();
    expect(state.deletionStarted()).toBe(true);
    expect(state.snapshot.deleting).toBe(true);
    expect(state.deletionStarted()).toBe(false);
    state.deletionFailed();
    expect(state.snapshot.deleting).toBe(false);
    expect(state.deletionStarted()).toBe(true);
    const gone = pad();
    gone.closedFor(CLOSE.NOT_FOUND, SESSION_DELETED);
    expect(gone.deletionStarted()).toBe(false);
  });

  it("keeps the server languages it was told", () => {
    const state = pad();
    state.serverRuns(["java", "cpp"]);
    expect([...state.snapshot.serverLanguages]).toEqual(["java", "cpp"]);
  });
});

describe("runControls", () => {
  it("enables Run for an editor when the language can run", () => {
    const view = runControls(pad().snapshot, available);
    expect(view).toMatchObject({ runDisabled: false, stopDisabled: true, note: "", runTitle: "Run (Ctrl+Enter)" });
  });

  it("says why Run is off: the owner's switch first, then the runner", () => {
    const state = pad();
    state.executionSettings(false);
    expect(runControls(state.snapshot, () => "Java runs on the server only").note).toBe(OFF_NOTE);
    state.executionSettings(true);
    const view = runControls(state.snapshot, () => "Java runs on the server only");
    expect(view.runDisabled).toBe(true);
    expect(view.note).toBe("Java runs on the server only");
  });

  it("puts the workspace's policy before the owner's switch and the runner", () => {
    const state = pad();
    state.serverRuns(["java", "cpp"]);
    state.executionSettings(false, "none");
    expect(runControls(state.snapshot, available)).toMatchObject({ runDisabled: true, note: POLICY_NONE_NOTE });
    state.executionSettings(true, "browser");
    expect(usableServerLanguages(state.snapshot).size).toBe(0); // the server's sandbox is off-limits
    expect(runControls(state.snapshot, available)).toMatchObject({ runDisabled: false, note: "" });
    state.meta("java", null);
    const java = runControls(state.snapshot, () => "Java runs on the server only");
    expect(java).toMatchObject({ runDisabled: true, note: POLICY_BROWSER_NOTE });
    state.meta("python", null); // a runner's own trouble is still told as it is
    expect(runControls(state.snapshot, () => "Pyodide failed to load").note).toBe("Pyodide failed to load");
    state.executionSettings(true, "sandbox");
    expect([...usableServerLanguages(state.snapshot)]).toEqual(["java", "cpp"]);
    state.executionSettings(true); // an older server says nothing of a policy: nothing is narrowed
    expect(state.snapshot.executionPolicy).toBe("sandbox");
  });

  it("shows a running run as Stop, and a viewer no note at all", () => {
    const state = pad();
    state.runStarted();
    expect(runControls(state.snapshot, available)).toMatchObject({ runDisabled: true, stopDisabled: false });
    const viewer = runControls(pad(true).snapshot, () => "anything");
    expect(viewer).toMatchObject({ runDisabled: true, note: "", runTitle: "Viewers cannot run code" });
  });

  it("offers the type-check toggle for TypeScript editors and the server offer for Python only", () => {
    const state = pad();
    state.meta("typescript", null);
    expect(runControls(state.snapshot, available)).toMatchObject({ showTypeErrors: true, keepServerOffer: false });
    expect(runControls(pad(true).snapshot, available).showTypeErrors).toBe(false);
  });
});

describe("linkText", () => {
  it("says connected only once synced, and pending edits when offline", () => {
    expect(linkText({ link: "connected", synced: true, pending: false }).state).toBe("connected");
    expect(linkText({ link: "connected", synced: false, pending: false }).text).toBe("Reconnecting…");
    expect(linkText({ link: "offline", synced: true, pending: true }).state).toBe("pending");
    expect(linkText({ link: "offline", synced: true, pending: false }).text).toBe("Offline");
  });
});

describe("closeMeaning", () => {
  it("rejoins on a bad token, gives up on a deleted session, freezes otherwise", () => {
    expect(closeMeaning(CLOSE.UNAUTHORIZED, "").kind).toBe("rejoin");
    expect(closeMeaning(CLOSE.NOT_FOUND, "")).toEqual({ kind: "gone", deleted: false });
    expect(closeMeaning(CLOSE.NOT_FOUND, "session not found")).toEqual({ kind: "gone", deleted: false });
    // Open while its owner deleted it (or the retention purge did): the page says so.
    expect(closeMeaning(CLOSE.NOT_FOUND, SESSION_DELETED)).toEqual({ kind: "gone", deleted: true });
    const large = closeMeaning(CLOSE.TOO_LARGE, "");
    expect(large.kind === "frozen" && large.message).toMatch(/larger than this server accepts/);
    const other = closeMeaning(CLOSE.BAD_MESSAGE, "malformed message");
    expect(other.kind === "frozen" && other.message).toMatch(/malformed message/);
  });
});

describe("the owner's controls", () => {
  it("ends and reopens: nobody edits or runs while ended, and the banner says who ended it", () => {
    const state = pad();
    expect(canEdit(state.snapshot)).toBe(true);
    expect(bannerText(state.snapshot, false)).toBe("");
    state.sessionEnded(true);
    expect(canEdit(state.snapshot)).toBe(false);
    expect(state.runStarted()).toBe(false);
    const controls = runControls(state.snapshot, available);
    expect(controls.runDisabled).toBe(true);
    expect(controls.note).toBe("");
    expect(controls.runTitle).toBe("The session has ended");
    expect(bannerText(state.snapshot, false)).toBe(ENDED_NOTE);
    expect(bannerText(state.snapshot, true)).toBe(ENDED_OWNER_NOTE);
    state.sessionEnded(false);
    expect(canEdit(state.snapshot)).toBe(true);
    expect(bannerText(state.snapshot, false)).toBe("");
    expect(state.runStarted()).toBe(true);
  });

  it("starts ended when the session was ended before the page opened", () => {
    const state = new PadState({ readOnly: false, language: "python", title: "T", ended: true });
    expect(canEdit(state.snapshot)).toBe(false);
  });

  it("explains a removal (4403), which outlasts a reopen", () => {
    expect(closeMeaning(CLOSE.FORBIDDEN, "removed by the session owner")).toEqual({ kind: "removed" });
    const state = pad();
    state.sessionEnded(true);
    state.closedFor(CLOSE.FORBIDDEN, "");
    expect(bannerText(state.snapshot, false)).toBe(REMOVED_NOTE);
    state.sessionEnded(false);
    expect(canEdit(state.snapshot)).toBe(false);
    expect(bannerText(state.snapshot, false)).toBe(REMOVED_NOTE);
  });

  it("reads the server's auth messages", () => {
    const message = (kind: number, reason: string): Uint8Array => {
      const text = new TextEncoder().encode(reason);
      return new Uint8Array([2, kind, text.length, ...text]);
    };
    expect(sessionEndedBy(message(0, "session-ended"), 1)).toBe(true);
    expect(sessionEndedBy(message(1, "session-reopened"), 1)).toBe(false);
    expect(sessionEndedBy(message(0, "some other reason"), 1)).toBe(null);
    expect(sessionEndedBy(new Uint8Array([2, 0, 40, 65]), 1)).toBe(null); // a length past the end
    expect(sessionEndedBy(new Uint8Array([2, 0xff]), 1)).toBe(null); // truncated
  });
});
