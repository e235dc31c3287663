// The code editor: CodeMirror 6 bound to the shared Y.Text, with remote cursors, and compartments for what can
// change while it is open (language, read-only, theme, font size, key bindings).
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching,
  foldGutter,
  foldKeymap,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
  defaultHighlightStyle,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { Compartment, EditorState, Prec, type Extension } from "@codemirror/state";
import { oneDark } from "@codemirror/theme-one-dark";
import {
  crosshairCursor,
  drawSelection,
  dropCursor,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
  rectangularSelection,
} from "@codemirror/view";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import * as Y from "yjs";
import type { Awareness } from "y-protocols/awareness";
import type { Language } from "./languages";
import type { KeymapMode, ResolvedTheme } from "./ui/settings";

/** What a language needs at once: its indentation (JavaScript and TypeScript keep CodeMirror's two spaces). */
function indentation(language: Language): Extension {
  return language === "javascript" || language === "typescript" ? [] : indentUnit.of("    ");
}

/** Highlighting and language data, one chunk a language, loaded when a session uses it: only the session's own
 * language is fetched, after the editor is already usable, instead of all five before it. */
export async function languageSupport(language: Language): Promise<Extension> {
  switch (language) {
    case "python":
      return [(await import("@codemirror/lang-python")).python(), indentation(language)];
    case "javascript":
      return (await import("@codemirror/lang-javascript")).javascript();
    case "typescript":
      return (await import("@codemirror/lang-javascript")).javascript({ typescript: true });
    case "java":
      return [(await import("@codemirror/lang-java")).java(), indentation(language)];
    case "cpp":
      return [(await import("@codemirror/lang-cpp")).cpp(), indentation(language)];
  }
}

export interface EditorOptions {
  parent: HTMLElement;
  text: Y.Text;
  awareness: Awareness;
  language: Language;
  readOnly: boolean;
  onRun: () => void;
  theme: ResolvedTheme;
  fontSize: number;
  /** Shift+Alt+F: format the code (not called in a read-only editor). */
  onFormat?: () => void;
  /** Ctrl+= / Ctrl+-: a larger or smaller font (+1 or -1). */
  onFontStep?: (step: 1 | -1) => void;
}

// The editor's light look; the dark one is One Dark. Syntax colours come from CodeMirror's default highlight
// style, which applies whenever the theme brings none.
const lightTheme: Extension = EditorView.theme(
  {
    "&": { backgroundColor: "#ffffff", color: "#1f2328" },
    ".cm-content": { caretColor: "#1f2328" },
    ".cm-cursor, .cm-dropCursor": { borderLeftColor: "#1f2328" },
    ".cm-gutters": { backgroundColor: "#f6f8fa", color: "#8c959f", border: "none" },
    ".cm-activeLine": { backgroundColor: "#f3f6fb" },
    ".cm-activeLineGutter": { backgroundColor: "#e9eef6", color: "#57606a" },
    "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection":
      { backgroundColor: "#b6d3ff" },
    ".cm-selectionMatch": { backgroundColor: "#e3ecfa" },
    "&.cm-focused .cm-matchingBracket": { backgroundColor: "#c8e1ff", outline: "1px solid #9ec5fe" },
    ".cm-panels": { backgroundColor: "#f6f8fa", color: "#1f2328" },
    ".cm-tooltip": { backgroundColor: "#ffffff", border: "1px solid #d0d7de" },
  },
  { dark: false },
);

export function themeExtension(theme: ResolvedTheme): Extension {
  return theme === "dark" ? oneDark : lightTheme;
}

function fontSizeExtension(px: number): Extension {
  // An attribute on the editor itself: it wins over the stylesheet's default size, and CodeMirror re-measures
  // its lines when it changes.
  return EditorView.editorAttributes.of({ style: `font-size: ${px}px` });
}

export class CodeEditor {
  readonly view: EditorView;
  private readonly languageSlot = new Compartment();
  private readonly readOnlySlot = new Compartment();
  private readonly themeSlot = new Compartment();
  private readonly fontSlot = new Compartment();
  private readonly keymapSlot = new Compartment();
  private keymapMode: KeymapMode = "default";
  private current: Language;

  constructor(options: EditorOptions) {
    this.current = options.language;
    // Undo only one's own changes (Yjs undo manager), never a collaborator's.
    const undoManager = new Y.UndoManager(options.text);
    const runKeys = Prec.highest(
      keymap.of([
        {
          key: "Mod-Enter",
          run: () => {
            options.onRun();
            return true;
          },
        },
        {
          key: "Shift-Alt-f",
          run: (view) => {
            if (view.state.readOnly || !options.onFormat) return false;
            options.onFormat();
            return true;
          },
        },
        ...(["Mod-=", "Mod-+"] as const).map((key) => ({ key, run: () => step(options, 1) })),
        { key: "Mod--", run: () => step(options, -1) },
      ]),
    );
    this.view = new EditorView({
      parent: options.parent,
      state: EditorState.create({
        doc: options.text.toString(),
        extensions: [
          // Vim or emacs bindings go first: they must see keys before the defaults do.
          this.keymapSlot.of([]),
          runKeys,
          lineNumbers(),
          highlightActiveLineGutter(),
          highlightSpecialChars(),
          foldGutter(),
          // A blinking caret is motion: people who ask their system for less of it get a steady one (WCAG 2.3.3),
          // and a page that does not blink draws no frames while nothing changes.
          drawSelection({ cursorBlinkRate: prefersReducedMotion() ? 0 : 1200 }),
          dropCursor(),
          EditorState.allowMultipleSelections.of(true),
          indentOnInput(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          bracketMatching(),
          closeBrackets(),
          autocompletion(),
          rectangularSelection(),
          crosshairCursor(),
          highlightActiveLine(),
          highlightSelectionMatches(),
          keymap.of([
            ...closeBracketsKeymap,
            ...defaultKeymap,
            ...searchKeymap,
            ...foldKeymap,
            ...completionKeymap,
            ...yUndoManagerKeymap,
            indentWithTab,
          ]),
          this.themeSlot.of(themeExtension(options.theme)),
          this.fontSlot.of(fontSizeExtension(options.fontSize)),
          EditorView.theme({ "&": { height: "100%" }, ".cm-scroller": { fontFamily: "var(--mono)" } }),
          // CodeMirror's text box has a role but no name; screen readers would announce an unnamed "edit text".
          EditorView.contentAttributes.of({ "aria-label": options.readOnly ? "Code (read-only)" : "Code editor" }),
          this.languageSlot.of(indentation(options.language)),
          this.readOnlySlot.of(readOnlyExtension(options.readOnly)),
          yCollab(options.text, options.awareness, { undoManager }),
        ],
      }),
    });
    this.view.dom.dataset.language = options.language;
    this.view.dom.dataset.theme = options.theme;
    void this.loadLanguage(options.language);
  }

  private async loadLanguage(language: Language, attempt = 0): Promise<void> {
    let support: Extension;
    try {
      support = await languageSupport(language);
    } catch {
      // Offline (a switch can arrive from the document while the network is gone) or the chunk did not come:
      // the text stays plain and editable, and the highlighting is fetched again. When the browser says it is
      // online already (it may have come back before this failure was reported, so its "online" event is gone),
      // a few timed retries; otherwise when it comes back.
      if (this.current !== language) return;
      const retry = (): void => void this.loadLanguage(language, attempt + 1);
      if (navigator.onLine && attempt < 5) window.setTimeout(retry, 500 * 2 ** attempt);
      else window.addEventListener("online", retry, { once: true });
      return;
    }
    // A switch made while this one was loading wins.
    if (this.current !== language) return;
    this.view.dispatch({ effects: this.languageSlot.reconfigure(support) });
    this.view.dom.dataset.highlighted = language;
  }

  setTheme(theme: ResolvedTheme): void {
    this.view.dispatch({ effects: this.themeSlot.reconfigure(themeExtension(theme)) });
    this.view.dom.dataset.theme = theme;
  }

  setFontSize(px: number): void {
    this.view.dispatch({ effects: this.fontSlot.reconfigure(fontSizeExtension(px)) });
  }

  /** Vim and emacs bindings are loaded (once, each in its own chunk) only when someone picks them. */
  async setKeymap(mode: KeymapMode): Promise<void> {
    this.keymapMode = mode;
    let extension: Extension = [];
    if (mode === "vim") extension = (await import("@replit/codemirror-vim")).vim();
    else if (mode === "emacs") extension = (await import("@replit/codemirror-emacs")).emacs();
    // A later choice made while this one was loading wins.
    if (this.keymapMode !== mode) return;
    // Highest, like the Run key: otherwise the standard keymap answers first (Ctrl+A would select all).
    this.view.dispatch({ effects: this.keymapSlot.reconfigure(Prec.highest(extension)) });
    this.view.dom.dataset.keymap = mode;
  }

  /**
   * Apply changes computed against ``basedOn`` as one transaction (one Yjs update, so collaborators' cursors
   * outside the changed text stay put). Returns false, changing nothing, when the document is no longer
   * ``basedOn`` (someone typed meanwhile).
   */
  replaceWith(basedOn: string, changes: { from: number; to: number; insert: string }[]): boolean {
    if (this.view.state.doc.toString() !== basedOn) return false;
    if (changes.length) this.view.dispatch({ changes, userEvent: "input.format", scrollIntoView: false });
    return true;
  }

  get text(): string {
    return this.view.state.doc.toString();
  }

  get language(): Language {
    return this.current;
  }

  setLanguage(language: Language): void {
    if (language === this.current) return;
    this.current = language;
    this.view.dispatch({ effects: this.languageSlot.reconfigure(indentation(language)) });
    this.view.dom.dataset.language = language;
    void this.loadLanguage(language);
  }

  setReadOnly(readOnly: boolean): void {
    this.view.dispatch({ effects: this.readOnlySlot.reconfigure(readOnlyExtension(readOnly)) });
  }

  focus(): void {
    this.view.focus();
  }

  /** Select the whole program (and take the focus, so the selection is the page's and copies as text). */
  selectAll(): void {
    this.view.focus();
    this.view.dispatch({ selection: { anchor: 0, head: this.view.state.doc.length }, userEvent: "select" });
  }
}

function step(options: EditorOptions, by: 1 | -1): boolean {
  if (!options.onFontStep) return false;
  options.onFontStep(by);
  return true;
}

function readOnlyExtension(readOnly: boolean): Extension {
  // Not editable, yet focusable: a read-only editor still scrolls with the keyboard, selects and copies.
  return readOnly
    ? [EditorState.readOnly.of(true), EditorView.editable.of(false), EditorView.contentAttributes.of({ tabindex: "0" })]
    : [];
}

function prefersReducedMotion(): boolean {
  return typeof window.matchMedia === "function" && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}
