// The share menu: the editor link (when this page knows it) and the read-only link, each with a copy button; on the
// owner's page, also a new link in place of either, turning the editor link off (where it carries an invite), and a
// one-time owner link that opens this page with the owner's controls on another device.
import type { AuthMode, CreatedOwnerLink, RotatedInvite } from "../contracts.gen";
import { CONFIRM, editorRow, inviteErrorText, viewerRow, type InviteAction, type ShareRow } from "../invites";
import { expiryText, OWNER_LINK_WARNING, ownerLinkErrorText } from "../ownerLinks";
import { h } from "./dom";

async function copy(text: string, input: HTMLInputElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.select();
    return document.execCommand("copy");
  }
}

/** What the owner's page does to the session's invites (its owner key goes with each). */
export interface ShareOwner {
  rotate(role: "editor" | "viewer"): Promise<RotatedInvite>;
  revoke(): Promise<void>;
  /** A one-time owner link, in place of the session's previous one. */
  ownerLink(): Promise<CreatedOwnerLink>;
}

export interface ShareSetup {
  auth: AuthMode;
  /** The session's page; null on a read-only page, which must not learn the editor link. */
  editorAddress: string | null;
  /** The editor invite this browser holds (where the session id alone grants nothing). */
  invite: string | null;
  viewerLink: string;
  origin: string;
  /** Null: not the owner's page, no changes offered. */
  owner: ShareOwner | null;
  /** What the server says now, asked each time the menu opens: the owner may have changed the links since this
   * page loaded (from another tab, device or the API). Absent on a read-only page. */
  fresh?: () => Promise<ShareFacts>;
}

/** The links as the server has them now. */
export interface ShareFacts {
  viewerLink: string;
  /** Whether the editor invite this page holds still opens the session (null: it holds none, or none is needed). */
  inviteOpens: boolean | null;
}

export interface ShareMenu {
  el: HTMLElement;
  /** Bring the links up to date (when the menu opens); a server out of reach leaves them as they were. */
  refresh(): Promise<void>;
}

const ACTION_IDS: Record<InviteAction, string> = {
  "rotate-editor": "new-editor-link",
  "revoke-editor": "turn-off-editor-link",
  "rotate-viewer": "new-viewer-link",
};

const DONE: Record<InviteAction, string> = {
  "rotate-editor": "A new editor link is in place; the old one no longer works.",
  "revoke-editor": "The editor link is turned off.",
  "rotate-viewer": "A new read-only link is in place; the old one no longer works.",
};

export function shareMenuFor(setup: ShareSetup): ShareMenu {
  const { owner } = setup;
  let invite = setup.invite;
  let replaced = false;
  let off = false;
  let viewerLink = setup.viewerLink;
  let busy = false;

  const message = h("p", { class: "share-message small", id: "share-message", role: "status", hidden: true });
  const say = (text: string, error: boolean): void => {
    message.textContent = text;
    message.classList.toggle("error", error);
    message.setAttribute("role", error ? "alert" : "status");
    message.hidden = !text;
  };

  const act = (action: InviteAction, button: HTMLButtonElement): void => {
    if (!owner || busy || !window.confirm(CONFIRM[action])) return;
    busy = true;
    button.disabled = true;
    say("", false);
    const change =
      action === "revoke-editor"
        ? owner.revoke().then(() => {
            invite = null;
            off = true;
          })
        : owner.rotate(action === "rotate-editor" ? "editor" : "viewer").then((answer) => {
            if (action === "rotate-editor") {
              invite = answer.editorInvite;
              replaced = false;
              off = false;
            } else {
              viewerLink = setup.origin + answer.viewUrl;
            }
          });
    change.then(
      () => {
        busy = false;
        render();
        say(DONE[action], false);
        // The button pressed may be gone: the row's first control keeps the focus in the menu.
        const row = action === "rotate-viewer" ? viewerSlot : editorSlot;
        row.querySelector<HTMLElement>("input, button")?.focus();
      },
      (err: unknown) => {
        busy = false;
        button.disabled = false;
        say(inviteErrorText(err, action), true);
      },
    );
  };

  const linkField = (link: string, label: string, id: string): HTMLElement => {
    const input = h("input", { readonly: true, value: link, id: `${id}-url`, "aria-label": label });
    const button = h("button", { class: "button small", id }, "Copy");
    button.addEventListener("click", () => {
      void copy(link, input).then((ok) => {
        button.textContent = ok ? "Copied" : "Select and copy";
        setTimeout(() => (button.textContent = "Copy"), 1500);
      });
    });
    return h("div", { class: "share-input" }, input, button);
  };

  const row = (label: string, view: ShareRow, id: string): HTMLElement => {
    const field = view.link === null ? null : linkField(view.link, label, id);
    const actions = view.actions.map(({ action, label: words }) => {
      const button = h("button", { class: "button small ghost", id: ACTION_IDS[action], "aria-label": `${words}: ${label.toLowerCase()}` }, words);
      if (action === "revoke-editor") button.classList.add("danger");
      button.addEventListener("click", () => act(action, button));
      return button;
    });
    return h(
      "div",
      { class: "share-row", "data-state": view.link === null ? "none" : "link" },
      h("div", { class: "share-label" }, h("strong", {}, label), view.hint ? h("span", { class: "muted small" }, view.hint) : null),
      field,
      view.note ? h("p", { class: "share-note muted small", id: `${id}-note` }, view.note) : null,
      actions.length ? h("div", { class: "share-actions" }, ...actions) : null,
    );
  };

  const editorSlot = h("div", { class: "share-slot", id: "editor-link-row" });
  const viewerSlot = h("div", { class: "share-slot", id: "viewer-link-row" });
  const render = (): void => {
    // A read-only page knows only its own link: the editor link is exactly what it must not learn.
    const editor =
      setup.editorAddress === null
        ? null
        : editorRow({ auth: setup.auth, address: setup.editorAddress, invite, off, owner: owner !== null, replaced });
    editorSlot.replaceChildren(...(editor ? [row("Editor link", editor, "copy-editor-link")] : []));
    editorSlot.hidden = editor === null;
    viewerSlot.replaceChildren(row("Read-only link", viewerRow(viewerLink, owner !== null), "copy-viewer-link"));
  };
  render();

  // The owner's page on another device: a link made on demand (it is a credential, so never made unasked).
  const ownerSlot = h("div", { class: "share-slot", id: "owner-link-row", hidden: owner === null });
  let ownerLink: CreatedOwnerLink | null = null;
  const renderOwner = (): void => {
    if (!owner) return;
    const label = "Open as owner elsewhere";
    const make = h(
      "button",
      { class: "button small ghost", id: "make-owner-link", "aria-label": ownerLink ? "New owner link" : "Make an owner link" },
      ownerLink ? "New link" : "Make link",
    );
    make.addEventListener("click", () => {
      if (busy) return;
      busy = true;
      make.disabled = true;
      say("", false);
      owner.ownerLink().then(
        (made) => {
          busy = false;
          ownerLink = made;
          renderOwner();
          ownerSlot.querySelector<HTMLElement>("input")?.focus();
        },
        (err: unknown) => {
          busy = false;
          make.disabled = false;
          say(ownerLinkErrorText(err), true);
        },
      );
    });
    ownerSlot.replaceChildren(
      h(
        "div",
        { class: "share-row", "data-state": ownerLink ? "link" : "none" },
        h("div", { class: "share-label" }, h("strong", {}, label), h("span", { class: "muted small" }, "Your controls, on another device")),
        ownerLink ? linkField(setup.origin + ownerLink.url, label, "copy-owner-link") : null,
        ownerLink ? h("p", { class: "share-note muted small", id: "owner-link-expiry" }, `${expiryText(ownerLink.expiresAt)} A new link replaces it.`) : null,
        ownerLink ? h("p", { class: "share-note share-warning small", id: "owner-link-warning", role: "note" }, OWNER_LINK_WARNING) : null,
        h("div", { class: "share-actions" }, make),
      ),
    );
  };
  renderOwner();

  const menu = h("div", { class: "share-menu", id: "share-menu" }, editorSlot, viewerSlot, ownerSlot, message);
  menu.hidden = true;

  let asking: Promise<void> | null = null;
  const refresh = (): Promise<void> => {
    const { fresh } = setup;
    if (!fresh) return Promise.resolve();
    // One question at a time; and none while the owner's own change is under way (its answer is newer).
    if (asking === null && !busy) {
      asking = fresh()
        .then((facts) => {
          if (busy) return;
          const stale = facts.inviteOpens === false;
          const changed = facts.viewerLink !== viewerLink || (stale && invite !== null);
          viewerLink = facts.viewerLink;
          if (stale) {
            invite = null;
            replaced = true;
          }
          if (changed) {
            const focused = menu.contains(document.activeElement) ? document.activeElement?.id : undefined;
            render();
            if (focused) document.getElementById(focused)?.focus();
          }
        })
        .catch(() => undefined)
        .finally(() => {
          asking = null;
        });
    }
    return asking ?? Promise.resolve();
  };
  return { el: menu, refresh };
}
