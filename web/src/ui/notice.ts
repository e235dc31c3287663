// A short message for everyone on the page (who switched the language, ...): shown for a few seconds, read out by
// screen readers without taking the focus.
import { h } from "./dom";

export class Notice {
  readonly el = h("div", { class: "notice", id: "notice", role: "status", "aria-live": "polite", hidden: true });
  private timer = 0;

  show(text: string, ms = 6000): void {
    this.el.textContent = text;
    this.el.hidden = false;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => (this.el.hidden = true), ms);
  }
}
