// The code editor: CodeMirror 6 bound to the shared Y.Text, with remote cursors and a language compartment.
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import { cpp } from "@codemirror/lang-cpp";
import { java } from "@codemirror/lang-java";
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
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

function languageSupport(language: Language): Extension {
  switch (language) {
    case "python":
      return [python(), indentUnit.of("    ")];
    case "javascript":
      return javascript();
    case "typescript":
      return javascript({ typescript: true });
    case "java":
      return [java(), indentUnit.of("    ")];
    case "cpp":
      return [cpp(), indentUnit.of("    ")];
  }
}

export interface EditorOptions {
  parent: HTMLElement;
  text: Y.Text;
  awareness: Awareness;
  language: Language;
  readOnly: boolean;
  onRun: () => void;
}

export class CodeEditor {
  readonly view: EditorView;
  private readonly languageSlot = new Compartment();
  private readonly readOnlySlot = new Compartment();
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
      ]),
    );
    this.view = new EditorView({
      parent: options.parent,
      state: EditorState.create({
        doc: options.text.toString(),
        extensions: [
          runKeys,
          lineNumbers(),
          highlightActiveLineGutter(),
          highlightSpecialChars(),
          foldGutter(),
          drawSelection(),
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
          oneDark,
          EditorView.theme({ "&": { height: "100%" }, ".cm-scroller": { fontFamily: "var(--mono)" } }),
          this.languageSlot.of(languageSupport(options.language)),
          this.readOnlySlot.of(readOnlyExtension(options.readOnly)),
          yCollab(options.text, options.awareness, { undoManager }),
        ],
      }),
    });
    this.view.dom.dataset.language = options.language;
  }

  get language(): Language {
    return this.current;
  }

  setLanguage(language: Language): void {
    if (language === this.current) return;
    this.current = language;
    this.view.dispatch({ effects: this.languageSlot.reconfigure(languageSupport(language)) });
    this.view.dom.dataset.language = language;
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

function readOnlyExtension(readOnly: boolean): Extension {
  // Not editable, yet focusable: a read-only editor still scrolls with the keyboard, selects and copies.
  return readOnly
    ? [EditorState.readOnly.of(true), EditorView.editable.of(false), EditorView.contentAttributes.of({ tabindex: "0" })]
    : [];
}
