// A session's invitations as the page shows them: the Share menu's editor and read-only rows with what the owner
// may do to each (make a new link, turn the editor link off), and the words for a link that no longer opens.
import { ApiError } from "./api";
import type { AuthMode } from "./contracts.gen";

export type InviteAction = "rotate-editor" | "revoke-editor" | "rotate-viewer";

export interface ShareRow {
  /** The address to copy; null when there is none to give (turned off, or not known to this page). */
  link: string | null;
  hint: string;
  /** A sentence shown where the link would be, when there is none. */
  note: string | null;
  /** What the owner may do, in order, with the buttons' words. */
  actions: { action: InviteAction; label: string }[];
}

/** What this page knows of the editor invite: the page's session address, the invite (where the session id alone
 * grants nothing), whether the owner turned it off from here. */
export interface EditorInviteState {
  auth: AuthMode;
  /** The session's page, `{origin}/s/{sessionId}`. */
  address: string;
  invite: string | null;
  off: boolean;
  owner: boolean;
  /** The invite this page was opened with no longer opens the session (the owner replaced it or turned it off). */
  replaced?: boolean;
}

const EDITOR_HINT = "Anyone with it can edit and run";
const VIEWER_HINT = "Watch the code and output; it never leads to the editor link";

/** The editor link: the session's page, with its invite in the fragment (never sent to a server) when it has one. */
export function editorLinkOf(address: string, invite: string | null): string {
  return invite ? `${address}#invite=${encodeURIComponent(invite)}` : address;
}

/** The Share menu's editor row (null: none to show). In `open` mode the session's address is the invitation and
 * nothing about it can change; in `api-key` mode its owner makes a new invite or turns it off. */
export function editorRow(state: EditorInviteState): ShareRow | null {
  if (state.auth === "open") return { link: state.address, hint: EDITOR_HINT, note: null, actions: [] };
  if (state.off) {
    // Only the owner's page turns it off, so only the owner sees this.
    return {
      link: null,
      hint: "Turned off",
      note: "Nobody new can join as an editor until you make a new link. People who joined stay.",
      actions: [{ action: "rotate-editor", label: "Make a new link" }],
    };
  }
  if (state.invite) {
    return {
      link: editorLinkOf(state.address, state.invite),
      hint: EDITOR_HINT,
      note: null,
      actions: state.owner
        ? [
            { action: "rotate-editor", label: "New link" },
            { action: "revoke-editor", label: "Turn off" },
          ]
        : [],
    };
  }
  // The invite is shown only when it is made: a page opened without it cannot give it out.
  if (!state.owner) {
    if (!state.replaced) return null;
    return {
      link: null,
      hint: "Replaced or turned off",
      note: "The owner made a new editor link or turned it off: the one this page had no longer works. Ask them for the current one. You stay in the session.",
      actions: [],
    };
  }
  return {
    link: null,
    hint: "",
    note: "This page does not have the current editor link (it is shown only when made). A new link replaces it.",
    actions: [
      { action: "rotate-editor", label: "New link" },
      { action: "revoke-editor", label: "Turn off" },
    ],
  };
}

export function viewerRow(link: string, owner: boolean): ShareRow {
  return { link, hint: VIEWER_HINT, note: null, actions: owner ? [{ action: "rotate-viewer", label: "New link" }] : [] };
}

/** What the owner is asked before each change. */
export const CONFIRM: Record<InviteAction, string> = {
  "rotate-editor": "Make a new editor link? The current editor link stops working; people who joined stay.",
  "revoke-editor": "Turn off the editor link? Nobody new can join as an editor until you make a new link; people who joined stay.",
  "rotate-viewer": "Make a new read-only link? The current read-only link stops working.",
};

/** A refused change, in plain words. */
export function inviteErrorText(err: unknown, action: InviteAction): string {
  const what =
    action === "rotate-viewer" ? "No new read-only link" : action === "rotate-editor" ? "No new editor link" : "The editor link is still on";
  return ownerActionErrorText(what, err);
}

/** An owner's action the server refused, in plain words: ``what`` did not happen, and why. */
export function ownerActionErrorText(what: string, err: unknown): string {
  if (!(err instanceof ApiError)) return `${what}: ${err instanceof Error ? err.message : String(err)}`;
  switch (err.code) {
    case "owner_key_required":
    case "owner_key_invalid":
      return `${what}: this browser's owner key is no longer accepted for this session.`;
    case "no_editor_invite":
      return `${what}: on this server the session's address itself is the editor link.`;
    case "session_not_found":
      return `${what}: this session no longer exists.`;
    case "network_error":
      return `${what}: the server cannot be reached. Check your connection and try again.`;
    default:
      if (err.status === 429 || err.status === 503) return `${what}: the server is busy; try again in a moment.`;
      return `${what}: ${err.message}`;
  }
}

export interface Problem {
  title: string;
  detail: string;
  /** Whether the link is gone for good: this browser forgets the session. */
  forget: boolean;
}

/** Why a link did not open the session: ``view`` for a read-only link, ``hadInvite`` when the page was given an
 * invite (an old one, or one turned off, is refused like none). */
export function openingProblem(err: unknown, view: boolean, hadInvite: boolean): Problem {
  if (err instanceof ApiError && (err.status === 404 || err.status === 422)) {
    return {
      title: "Session not found",
      detail: view
        ? "This read-only link does not open a session on this server: the session may have been deleted, or its owner made a new read-only link. Ask for the current link."
        : "This link does not point to a session on this server. It may have been deleted.",
      forget: true,
    };
  }
  if (err instanceof ApiError && err.code === "session_credentials_required") {
    return hadInvite
      ? {
          title: "This invite link no longer works",
          detail: "The session's owner made a new link or turned this one off. Ask them for the current link.",
          forget: false,
        }
      : {
          title: "This session needs its invite",
          detail:
            "On this server a session opens only with its whole invite link (it ends with #invite=…). Ask the person who shared it for the link again.",
          forget: false,
        };
  }
  return { title: "Cannot open the session", detail: err instanceof Error ? err.message : String(err), forget: false };
}

/** A refused join, in plain words (the invite may have been replaced while the name was being typed). */
export function joinErrorText(err: unknown): string {
  if (err instanceof ApiError && err.code === "session_credentials_required") {
    return "This invite link no longer works: the session's owner made a new link or turned it off. Ask them for the current link.";
  }
  return err instanceof Error ? err.message : String(err);
}
