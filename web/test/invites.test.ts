import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api";
import { editorLinkOf, editorRow, inviteErrorText, joinErrorText, openingProblem, viewerRow } from "../src/invites";

const address = "https://pad.example/s/abc";
const actions = (row: { actions: { action: string }[] } | null): string[] => row?.actions.map((a) => a.action) ?? [];

describe("editorRow", () => {
  it("is the session's address in open mode, with nothing to change, owner or not", () => {
    for (const owner of [true, false]) {
      const row = editorRow({ auth: "open", address, invite: null, off: false, owner });
      expect(row).toEqual({ link: address, hint: "Anyone with it can edit and run", note: null, actions: [] });
    }
  });

  it("carries the invite in api-key mode; the owner may make a new one or turn it off", () => {
    const owner = editorRow({ auth: "api-key", address, invite: "inv_a/b", off: false, owner: true });
    expect(owner?.link).toBe(`${address}#invite=inv_a%2Fb`);
    expect(actions(owner)).toEqual(["rotate-editor", "revoke-editor"]);
    const guest = editorRow({ auth: "api-key", address, invite: "inv_x", off: false, owner: false });
    expect(guest?.link).toBe(`${address}#invite=inv_x`);
    expect(actions(guest)).toEqual([]);
  });

  it("gives no link once turned off, and says what that means", () => {
    const row = editorRow({ auth: "api-key", address, invite: null, off: true, owner: true });
    expect(row?.link).toBeNull();
    expect(row?.note).toContain("Nobody new can join as an editor until you make a new link");
    expect(actions(row)).toEqual(["rotate-editor"]);
  });

  it("gives a guest no link once the one it was opened with stopped working, and says why", () => {
    const row = editorRow({ auth: "api-key", address, invite: null, off: false, owner: false, replaced: true });
    expect(row?.link).toBeNull();
    expect(row?.hint).toBe("Replaced or turned off");
    expect(row?.note).toContain("Ask them for the current one");
    expect(actions(row)).toEqual([]);
    // The owner's page is offered a new link instead (the owner's own words, not the guest's).
    const owner = editorRow({ auth: "api-key", address, invite: null, off: false, owner: true, replaced: true });
    expect(owner?.note).toContain("A new link replaces it");
    // In open mode the address is the invitation: nothing is ever replaced.
    expect(editorRow({ auth: "open", address, invite: null, off: false, owner: false, replaced: true })?.link).toBe(address);
  });

  it("never offers the bare address where it opens nothing", () => {
    // A participant without the invite has no link to give; the owner can make one.
    expect(editorRow({ auth: "api-key", address, invite: null, off: false, owner: false })).toBeNull();
    const owner = editorRow({ auth: "api-key", address, invite: null, off: false, owner: true });
    expect(owner?.link).toBeNull();
    expect(owner?.note).toContain("A new link replaces it");
    expect(actions(owner)).toEqual(["rotate-editor", "revoke-editor"]);
  });
});

describe("links", () => {
  it("adds the invite in the fragment only when there is one", () => {
    expect(editorLinkOf(address, null)).toBe(address);
    expect(editorLinkOf(address, "inv_1")).toBe(`${address}#invite=inv_1`);
  });

  it("offers a new read-only link to the owner only", () => {
    expect(actions(viewerRow("https://pad.example/v/xyz", true))).toEqual(["rotate-viewer"]);
    expect(actions(viewerRow("https://pad.example/v/xyz", false))).toEqual([]);
  });
});

describe("inviteErrorText", () => {
  it("says what did not happen and why, in plain words", () => {
    expect(inviteErrorText(new ApiError(403, "owner_key_invalid", "The owner key does not match this session."), "rotate-viewer")).toBe(
      "No new read-only link: this browser's owner key is no longer accepted for this session.",
    );
    expect(inviteErrorText(new ApiError(0, "network_error", "x"), "revoke-editor")).toBe(
      "The editor link is still on: the server cannot be reached. Check your connection and try again.",
    );
    expect(inviteErrorText(new ApiError(409, "no_editor_invite", "x"), "rotate-editor")).toContain("the session's address itself");
    expect(inviteErrorText(new ApiError(404, "session_not_found", "x"), "rotate-editor")).toBe(
      "No new editor link: this session no longer exists.",
    );
    expect(inviteErrorText(new ApiError(503, "unavailable", "x"), "rotate-editor")).toContain("busy");
    expect(inviteErrorText(new ApiError(500, "internal_error", "Something broke."), "rotate-viewer")).toBe(
      "No new read-only link: Something broke.",
    );
  });
});

describe("openingProblem", () => {
  const refused = new ApiError(401, "session_credentials_required", "Reading this session needs `X-Invite`…");

  it("tells an old or turned-off invite from a link without one", () => {
    expect(openingProblem(refused, false, true).title).toBe("This invite link no longer works");
    expect(openingProblem(refused, false, true).detail).toContain("Ask them for the current link");
    expect(openingProblem(refused, false, false).title).toBe("This session needs its invite");
    expect(openingProblem(refused, false, true).forget).toBe(false);
  });

  it("says a read-only link may have been replaced, and forgets what is gone", () => {
    const gone = new ApiError(404, "view_not_found", "No such read-only link.");
    const view = openingProblem(gone, true, false);
    expect(view.title).toBe("Session not found");
    expect(view.detail).toContain("made a new read-only link");
    expect(view.forget).toBe(true);
    expect(openingProblem(gone, false, false).detail).toContain("It may have been deleted");
  });

  it("shows anything else as it came", () => {
    expect(openingProblem(new ApiError(0, "network_error", "The server cannot be reached."), false, false)).toEqual({
      title: "Cannot open the session",
      detail: "The server cannot be reached.",
      forget: false,
    });
  });
});

describe("joinErrorText", () => {
  it("explains an invite replaced while the name was typed", () => {
    expect(joinErrorText(new ApiError(401, "session_credentials_required", "Joining this session needs…"))).toContain(
      "This invite link no longer works",
    );
    expect(joinErrorText(new ApiError(409, "session_full", "The session is full."))).toBe("The session is full.");
  });
});
