// Two small controls around Run: "Stop on type errors" for TypeScript (remembered by this browser), and the offer
// to run a Python program on the server when it imports a package the browser does not have.
import { typeErrorsPreference } from "../runners/typecheck";
import { h } from "./dom";

/** A checkbox shown while the pad is on TypeScript. */
export function typeErrorsToggle(): { el: HTMLElement; show(visible: boolean): void } {
  const box = h("input", { type: "checkbox", id: "stop-on-type-errors" });
  box.checked = typeErrorsPreference.stop();
  box.addEventListener("change", () => typeErrorsPreference.setStop(box.checked));
  const el = h(
    "label",
    { class: "type-errors-toggle small", title: "Do not run a TypeScript program that has type errors" },
    box,
    " Stop on type errors",
  );
  el.hidden = true;
  return { el, show: (visible) => (el.hidden = !visible) };
}

/** "numpy is not available in the browser: [Run on the server]", until the next run or a language switch. */
export class ServerOffer {
  readonly el: HTMLElement;
  private readonly text: HTMLElement;
  private readonly button: HTMLButtonElement;
  private action: (() => void) | null = null;

  constructor() {
    this.text = h("span", {});
    this.button = h("button", { class: "button small", id: "run-on-server" }, "Run on the server");
    this.button.addEventListener("click", () => {
      const action = this.action;
      this.hide();
      action?.();
    });
    this.el = h("div", { class: "run-note", id: "server-offer", role: "status" }, this.text, " ", this.button);
    this.el.hidden = true;
  }

  show(module: string, action: () => void): void {
    this.text.textContent = `${module} is not available in the browser's Python; this server runs Python with its own packages.`;
    this.action = action;
    this.el.hidden = false;
  }

  hide(): void {
    this.action = null;
    this.el.hidden = true;
  }
}
