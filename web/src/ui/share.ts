// The share menu: the editor link (when this page knows it) and the read-only link, each with a copy button.
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

export function shareMenuFor(editorLink: string | null, viewerLink: string): HTMLElement {
  const row = (label: string, hint: string, link: string, id: string): HTMLElement => {
    const input = h("input", { readonly: true, value: link, id: `${id}-url`, "aria-label": label });
    const button = h("button", { class: "button small", id }, "Copy");
    button.addEventListener("click", () => {
      void copy(link, input).then((ok) => {
        button.textContent = ok ? "Copied" : "Select and copy";
        setTimeout(() => (button.textContent = "Copy"), 1500);
      });
    });
    return h("div", { class: "share-row" }, h("div", { class: "share-label" }, h("strong", {}, label), h("span", { class: "muted small" }, hint)), h("div", { class: "share-input" }, input, button));
  };
  const menu = h(
    "div",
    { class: "share-menu", id: "share-menu" },
    // A read-only page knows only its own link: the editor link is exactly what it must not learn.
    editorLink === null ? null : row("Editor link", "Anyone with it can edit and run", editorLink, "copy-editor-link"),
    row("Read-only link", "Watch the code and output; it never leads to the editor link", viewerLink, "copy-viewer-link"),
  );
  menu.hidden = true;
  return menu;
}
