// The list of keyboard shortcuts, in a modal dialog: opened with "?" (outside the editor and text fields) or the
// header's "?" button, closed with Escape or Close, and the focus goes back where it was. Loaded on first use.
import { h, keepTabIn } from "./dom";
import "./shortcuts.css";

type Shortcut = [keys: string[][], what: string];

const mac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
const MOD = mac ? "⌘" : "Ctrl";
const ALT = mac ? "⌥" : "Alt";

/** The shortcuts the page binds (session.ts, editor.ts) and CodeMirror's keymaps that the editor loads. */
function groups(readOnly: boolean): [title: string, shortcuts: Shortcut[]][] {
  const editing: Shortcut[] = [
    [[[MOD, "Z"]], "Undo your own change (never a collaborator's)"],
    [[[MOD, mac ? "Shift" : "", mac ? "Z" : "Y"].filter(Boolean)], "Redo"],
    [[["Tab"], ["Shift", "Tab"]], "Indent, or indent less"],
    [[[MOD, "/"]], "Comment or uncomment the lines"],
    [[[ALT, "↑"], [ALT, "↓"]], "Move the line up or down"],
    [[[MOD, "D"]], "Select the next occurrence"],
    [[["Ctrl", "Space"]], "Suggest completions"],
    [[["Shift", ALT, "F"]], "Format the code"],
  ];
  const all: [string, Shortcut[]][] = [
    [
      "Running",
      readOnly
        ? []
        : [
            [[[MOD, "Enter"]], "Run the code (anywhere on the page)"],
          ],
    ],
    ["Editing", readOnly ? [] : editing],
    [
      "Selecting and finding",
      [
        [[[MOD, "A"]], "Select all the code (anywhere on the page)"],
        [[[MOD, "F"]], readOnly ? "Find" : "Find and replace"],
        [[[MOD, "G"], ["Shift", MOD, "G"]], "Next or previous match"],
        [[[MOD, ALT, "G"]], "Go to a line"],
      ],
    ],
    [
      "View",
      [[[[MOD, "="], [MOD, "-"]], "Larger or smaller font"]],
    ],
    [
      "Moving around",
      [
        [[["Escape"], ["Tab"]], "Leave the editor: Escape, then Tab (in the editor Tab indents)"],
        [[[mac ? "Shift" : "Ctrl", ...(mac ? [ALT, "M"] : ["M"])]], "Tab always moves the focus (press again to undo)"],
        [[["Escape"]], "Close a menu or this list"],
        [[["?"]], "This list (outside the editor and text fields)"],
      ],
    ],
  ];
  return all.filter(([, shortcuts]) => shortcuts.length > 0);
}

function keys(combos: string[][]): HTMLElement {
  const dt = h("dt");
  combos.forEach((combo, i) => {
    if (i) dt.append(h("span", { class: "or" }, combos[0]?.[0] === "Escape" && combos[1]?.[0] === "Tab" ? " then " : " / "));
    combo.forEach((key, j) => {
      if (j) dt.append("+");
      dt.append(h("kbd", {}, key));
    });
  });
  return dt;
}

let dialog: HTMLDialogElement | null = null;

function build(readOnly: boolean): HTMLDialogElement {
  const close = h("button", { class: "button small", id: "shortcuts-close", type: "submit", autofocus: true }, "Close");
  return h(
    "dialog",
    { class: "shortcuts-dialog", id: "shortcuts-dialog", "aria-labelledby": "shortcuts-title" },
    h(
      "form",
      { method: "dialog" },
      h("header", { class: "shortcuts-head" }, h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"), close),
      ...groups(readOnly).map(([title, shortcuts]) =>
        h(
          "section",
          {},
          h("h3", {}, title),
          h("dl", {}, ...shortcuts.map(([combos, what]) => h("div", { class: "shortcut" }, keys(combos), h("dd", {}, what)))),
        ),
      ),
    ),
  );
}

export function showShortcuts(readOnly: boolean): void {
  if (!dialog) {
    dialog = build(readOnly);
    const built = dialog;
    built.addEventListener("keydown", (event) => keepTabIn(built, event));
    document.body.append(dialog);
  }
  if (dialog.open) return;
  // A modal dialog keeps the focus inside it (the rest of the page is inert) and closes on Escape; closing hands
  // the focus back to what had it, which the browser does not do for every way of closing.
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const current = dialog;
  // The close event comes a task after the dialog is gone: by then the focus may have moved on (a click, a Tab),
  // and taking it back would undo that. Only a focus left nowhere, or still in the dialog, goes back.
  current.addEventListener(
    "close",
    () => {
      const now = document.activeElement;
      if (!now || now === document.body || current.contains(now)) opener?.focus();
    },
    { once: true },
  );
  current.showModal();
}
