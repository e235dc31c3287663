// The pages around the pad: asking a newcomer's name, and saying why a session cannot be opened.
import type { PadAccess, PadInfo } from "../access";
import { joinErrorText } from "../invites";
import { languageInfo } from "../languages";
import { store, type StoredParticipant } from "../store";
import { h } from "./dom";

function fullPage(...children: (Node | string | null)[]): void {
  document.body.replaceChildren(h("main", { class: "center-page" }, h("div", { class: "card" }, ...children)));
}

export function showProblem(title: string, detail: string): void {
  fullPage(h("h1", {}, title), h("p", { class: "muted" }, detail), h("a", { class: "button primary", href: "/" }, "Start a new session"));
}

/** ``note``: something the person should know before joining (an owner link that did not work), shown above. */
export function askName(session: PadInfo, access: PadAccess, note: string | null = null): Promise<StoredParticipant> {
  const role = access.role;
  return new Promise((resolve) => {
    const input = h("input", {
      id: "join-name",
      name: "name",
      placeholder: "Your name",
      maxlength: 64,
      required: true,
      autocomplete: "nickname",
      value: store.name(),
    });
    const error = h("p", { class: "error", role: "alert" });
    const submit = h("button", { class: "button primary", type: "submit", id: "join-submit" }, role === "viewer" ? "Watch" : "Join");
    const form = h(
      "form",
      { class: "join-form" },
      h("label", { for: "join-name" }, "Your name"),
      input,
      error,
      submit,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name) {
        error.textContent = "Please enter a name so others know who is typing.";
        return;
      }
      submit.disabled = true;
      access.join(name).then(
        (p) => {
          store.setName(name);
          const stored: StoredParticipant = { id: p.id, token: p.token, name: p.name, color: p.color, role: p.role };
          store.setParticipant(access.key, stored);
          resolve(stored);
        },
        (err: unknown) => {
          submit.disabled = false;
          error.textContent = joinErrorText(err);
        },
      );
    });
    fullPage(
      h("div", { class: "brand big" }, h("span", { class: "logo" }, "⌘"), "Code Connect Live"),
      h("h1", {}, session.title),
      note ? h("p", { class: "error", id: "join-note", role: "alert" }, note) : null,
      h(
        "p",
        { class: "muted" },
        role === "viewer"
          ? "You are joining with a read-only link: you can watch and see the output, but not edit."
          : `${languageInfo(session.language).label} · ${
              session.participants.length ? `${session.participants.length} joined so far` : "be the first to join"
            }`,
      ),
      form,
    );
    input.focus();
    input.select();
  });
}
