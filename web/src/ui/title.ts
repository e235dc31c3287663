// The session title in the header, renamed in place by editors: click it (or the pencil), Enter saves, Escape
// cancels. The title lives in the shared document, so everyone sees the new one at once.
import { MAX_TITLE_LENGTH } from "../contracts.gen";
import { h } from "./dom";

/** The server's default limit (CODECONNECT_MAX_TITLE_LENGTH); it keeps the last valid title otherwise. */
export { MAX_TITLE_LENGTH };

/** A title as the server accepts it (1-200 characters, no NUL), trimmed; null when there is none. */
export function cleanTitle(value: string): string | null {
  const title = value.trim();
  if (!title || title.includes("\0") || [...title].length > MAX_TITLE_LENGTH) return null;
  return title;
}

export class TitleEditor {
  readonly el: HTMLElement;
  private input: HTMLInputElement | null = null;
  private pencil: HTMLButtonElement | null = null;
  private allowed = true;

  /** ``label`` is the header's title element, which keeps showing (and receiving) the shared title. */
  constructor(
    private readonly label: HTMLElement,
    private readonly save: (title: string) => void,
    editable: boolean,
  ) {
    if (!editable) {
      this.el = h("span", { class: "title-wrap" }, label);
      return;
    }
    const pencil = h("button", { class: "button ghost rename-title", id: "rename-title", title: "Rename the session", "aria-label": "Rename the session" }, "✎");
    label.classList.add("editable");
    label.addEventListener("click", () => this.start());
    pencil.addEventListener("click", () => this.start());
    this.pencil = pencil;
    this.el = h("span", { class: "title-wrap" }, label, pencil);
  }

  get editing(): boolean {
    return this.input !== null;
  }

  /** Renaming stops while the session is ended (and comes back when it is reopened). */
  setEditable(editable: boolean): void {
    this.allowed = editable;
    if (this.pencil) this.pencil.hidden = !editable;
    this.label.classList.toggle("editable", editable && this.pencil !== null);
  }

  start(): void {
    if (this.input || !this.allowed || !this.pencil) return;
    const input = h("input", {
      class: "title-input",
      id: "title-input",
      value: this.label.textContent ?? "",
      maxlength: MAX_TITLE_LENGTH,
      "aria-label": "Session title",
      autocomplete: "off",
      spellcheck: "false",
    });
    this.input = input;
    let done = false;
    const finish = (keep: boolean): void => {
      if (done) return;
      done = true;
      const title = keep ? cleanTitle(input.value) : null;
      this.input = null;
      input.replaceWith(this.label);
      if (this.pencil) this.pencil.hidden = false;
      if (title !== null && title !== this.label.textContent) {
        this.label.textContent = title;
        this.save(title);
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        // Escape belongs to the title, not to menus or the editor behind it.
        event.stopPropagation();
        finish(false);
      }
    });
    // Leaving the field keeps what was typed, as renaming a file does.
    input.addEventListener("blur", () => finish(true));
    this.label.replaceWith(input);
    if (this.pencil) this.pencil.hidden = true;
    input.focus();
    input.select();
  }
}
