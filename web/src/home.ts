// The start page: create a session, or reopen one this browser used before.
import { api, ApiError } from "./api";
import { LANGUAGES } from "./languages";
import { store } from "./store";
import { h } from "./ui/dom";

function ago(iso: string): string {
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function homePage(): void {
  document.title = "Code Connect Live";
  const title = h("input", { id: "title", name: "title", placeholder: "Interview with …", maxlength: 200, value: "" });
  const language = h("select", { id: "new-language", name: "language" }, ...LANGUAGES.map((l) => h("option", { value: l.name }, l.label)));
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { class: "button primary", type: "submit", id: "create" }, "Create session");
  const form = h(
    "form",
    { class: "create-form" },
    h("label", { for: "title" }, "Title"),
    title,
    h("label", { for: "new-language" }, "Language"),
    language,
    error,
    submit,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit.disabled = true;
    api.createSession(title.value.trim() || "Untitled session", language.value as (typeof LANGUAGES)[number]["name"]).then(
      (created) => {
        store.remember({ id: created.id, title: created.title, language: created.language, ownerKey: created.ownerKey });
        location.assign(`/s/${encodeURIComponent(created.id)}`);
      },
      (err: unknown) => {
        submit.disabled = false;
        error.textContent = err instanceof ApiError ? err.message : String(err);
      },
    );
  });
  const recent = store.recent();
  document.body.replaceChildren(
    h(
      "main",
      { class: "center-page" },
      h(
        "div",
        { class: "card wide" },
        h("h1", { class: "brand big" }, h("span", { class: "logo", "aria-hidden": "true" }, "⌘"), "Code Connect Live"),
        h("p", { class: "muted" }, "A live code pad: write and run code together, in the browser. Share the link and everyone sees the same code, cursors and output."),
        form,
        recent.length
          ? h(
              "section",
              { class: "recent" },
              h("h2", {}, "Recent sessions"),
              h(
                "ul",
                { id: "recent" },
                ...recent.map((s) =>
                  h(
                    "li",
                    {},
                    h("a", { href: s.path ?? `/s/${encodeURIComponent(s.id)}` }, s.title),
                    h("span", { class: "muted small" }, `${LANGUAGES.find((l) => l.name === s.language)?.label ?? s.language} · ${ago(s.openedAt)}`),
                  ),
                ),
              ),
            )
          : null,
      ),
    ),
  );
  title.focus();
}
