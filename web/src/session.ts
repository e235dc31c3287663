// The session page: join (or rejoin) as a participant, then the shared editor, runner and output.
import { padAccess, type PadInfo, type PadRoute } from "./access";
import { api, ApiError } from "./api";
import { announceLanguageSwitches } from "./authors";
import { Collab } from "./collab";
import type { AuthMode } from "./contracts.gen";
import { pageConfig } from "./config";
import { CodeEditor } from "./editor";
import { isLanguage, LANGUAGES, languageInfo, type Language } from "./languages";
import { Runners } from "./runners/runner";
import { LivePublisher, type LivePhase } from "./liveRuns";
import { bannerText, canEdit, linkText, PadState, runControls, usableServerLanguages } from "./padState";
import { appendRun } from "./runs";
import { store } from "./store";
import { h, lighten } from "./ui/dom";
import { Notice } from "./ui/notice";
import { OutputPanel } from "./ui/output";
import { PeopleView } from "./ui/people";
import { ServerOffer, typeErrorsToggle } from "./ui/run-choices";
import { loadSettings, resolveTheme, SettingsMenu } from "./ui/settings";
import { TitleEditor } from "./ui/title";
import { askName, showProblem } from "./ui/join";
import { shareMenuFor, type ShareFacts, type ShareOwner } from "./ui/share";
import { openingProblem } from "./invites";
import { claimOwnerLink } from "./ownerLinks";
import { download, fileName } from "./download";

/** The links as the server has them now, for the Share menu: the read-only link, and whether the editor invite this
 * browser holds still opens the session (only where the session id alone grants nothing). */
function shareFacts(sessionId: string, auth: AuthMode): () => Promise<ShareFacts> {
  return async () => {
    const session = await api.getSession(sessionId);
    const invite = store.invite(sessionId);
    const inviteOpens = auth === "open" || invite === null ? null : await api.inviteOpens(sessionId, invite);
    return { viewerLink: location.origin + session.viewUrl, inviteOpens };
  };
}

/** The owner's changes to the session's invites; this browser keeps the editor invite it makes (and forgets one
 * turned off), as if it had opened the new link. Its own page keeps working with the owner key. */
function inviteOwner(sessionId: string, ownerKey: string): ShareOwner {
  return {
    rotate: async (role) => {
      const answer = await api.rotateInvite(sessionId, ownerKey, role);
      if (answer.editorInvite) store.setInvite(sessionId, answer.editorInvite);
      return answer;
    },
    revoke: async () => {
      await api.revokeEditorInvite(sessionId, ownerKey);
      store.forgetInvite(sessionId);
    },
    ownerLink: () => api.makeOwnerLink(sessionId, ownerKey),
  };
}

function randomId(): string {
  // crypto.randomUUID needs a secure context; a LAN deployment over plain HTTP is not one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** ``ownerCode``: the code of the owner link that opened the page, claimed before anything else (the owner key it
 * hands over may be what lets this browser read the session). */
export async function sessionPage(route: PadRoute, ownerCode: string | null = null): Promise<void> {
  const access = padAccess(route);
  const role = access.role;
  // Why the owner link did not work (null: none, or this browser now holds the owner key).
  const ownerLinkProblem = ownerCode && access.sessionId !== null ? await claimOwnerLink(access.sessionId, ownerCode) : null;
  let session: PadInfo;
  try {
    session = await access.load();
  } catch (err) {
    if (ownerLinkProblem) {
      // Nothing else would open it either: the link's problem is the one to tell.
      showProblem("This owner link does not work", ownerLinkProblem);
      return;
    }
    // An invite this browser was given and that no longer opens the session was replaced or turned off.
    const problem = openingProblem(err, access.sessionId === null, access.sessionId !== null && store.invite(access.sessionId) !== null);
    // Deleted (or purged) since this browser had it, or a read-only link replaced: off the start page's list.
    if (problem.forget) store.forgetSession(access.key);
    showProblem(problem.title, problem.detail);
    return;
  }
  store.remember({ id: access.key, title: session.title, language: session.language, path: access.path });
  document.title = `${session.title} · Code Connect Live`;
  const me = store.participant(access.key, role) ?? (await askName(session, access, ownerLinkProblem));
  const readOnly = me.role === "viewer";
  const config = pageConfig();
  const state = new PadState({ readOnly, language: session.language, title: session.title, ended: Boolean(session.endedAt) });
  // The owner's controls show where this browser created the session, or was handed its owner key by an owner
  // link (it keeps the key; see store.ts). Only editor links name the session.
  const ownerKey = access.sessionId === null ? null : store.ownerKey(access.sessionId);

  let onClosed: (code: number, reason: string) => void = () => undefined;
  let settingsPoll = 0;
  const collab = new Collab(
    access.live,
    me.token,
    { name: me.name, color: me.color, colorLight: lighten(me.color), participantId: me.id },
    (code, reason) => onClosed(code, reason),
    (ended) => state.sessionEnded(ended),
  );

  // --- Layout ---------------------------------------------------------------------------------------------
  const languageSelect = h(
    "select",
    { id: "language", "aria-label": "Language", disabled: readOnly },
    ...LANGUAGES.map((l) => h("option", { value: l.name }, l.label)),
  );
  languageSelect.value = session.language;
  const runButton = h("button", { class: "button run", id: "run", title: "Run (Ctrl+Enter)" }, "▶ Run");
  const stopButton = h("button", { class: "button stop", id: "stop", disabled: true, title: "Stop the run" }, "■ Stop");
  const runNote = h("span", { class: "run-note", id: "run-note" });
  const typeErrors = typeErrorsToggle();
  const serverOffer = new ServerOffer();
  const banner = h("div", { class: "banner", id: "banner", role: "alert", hidden: true });
  const notice = new Notice();
  // A polite live region: losing and regaining the connection is read out, not only coloured.
  const conn = h("span", { class: "conn", id: "conn", role: "status" }, h("span", { class: "conn-dot" }), h("span", { class: "conn-text" }, "Connecting…"));
  const shareMenu = shareMenuFor({
    auth: config.auth,
    editorAddress: session.links.editor,
    invite: access.sessionId === null ? null : store.invite(access.sessionId),
    viewerLink: session.links.viewer,
    origin: location.origin,
    owner: ownerKey === null || access.sessionId === null ? null : inviteOwner(access.sessionId, ownerKey),
    fresh: access.sessionId === null ? undefined : shareFacts(access.sessionId, config.auth),
  });
  const shareButton = h("button", { class: "button ghost", id: "share", "aria-expanded": "false", "aria-controls": "share-menu" }, "Share");
  const showShare = (open: boolean): void => {
    shareMenu.el.hidden = !open;
    shareButton.setAttribute("aria-expanded", String(open));
    if (open) void shareMenu.refresh();
  };
  shareButton.addEventListener("click", () => showShare(shareMenu.el.hidden));
  document.addEventListener("click", (event) => {
    if (!shareMenu.el.hidden && !(event.target instanceof Node && shareButton.parentElement?.contains(event.target))) {
      showShare(false);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || shareMenu.el.hidden) return;
    // Focus inside the menu would be left on a hidden field: it goes back to the button that opened the menu.
    const inside = shareMenu.el.contains(document.activeElement);
    showShare(false);
    if (inside) shareButton.focus();
  });
  const downloadButton = h("button", { class: "button ghost", id: "download", title: "Download the code" }, "Download");
  // Playback of the session's history: the owner's, and participants' where the server lets them read it (asked
  // below; the button stays hidden otherwise).
  const historyButton =
    access.sessionId === null
      ? null
      : h(
          "button",
          { class: "button ghost", id: "history", title: "Play back the session's history", "aria-pressed": "false", hidden: ownerKey === null },
          "History",
        );
  const deleteButton =
    ownerKey === null ? null : h("button", { class: "button ghost danger", id: "delete-session", title: "Delete this session for everyone", "aria-label": "Delete session" }, "Delete");
  const shortcutsButton = h(
    "button",
    { class: "button ghost", id: "shortcuts", title: "Keyboard shortcuts (?)", "aria-label": "Keyboard shortcuts", "aria-haspopup": "dialog" },
    "?",
  );
  // The dialog's code loads on first use: it is not needed to start editing.
  const showShortcuts = (): void => void import("./ui/shortcuts").then(({ showShortcuts }) => showShortcuts(readOnly));
  shortcutsButton.addEventListener("click", showShortcuts);
  document.addEventListener("keydown", (event) => {
    // "?" is text in the editor and in fields; elsewhere on the page it opens the list of shortcuts.
    const target = event.target;
    if (
      event.key !== "?" ||
      event.ctrlKey ||
      event.metaKey ||
      event.altKey ||
      event.defaultPrevented ||
      (target instanceof HTMLElement && (target.isContentEditable || target.closest("input, textarea, select, .cm-editor, dialog")))
    ) {
      return;
    }
    event.preventDefault();
    showShortcuts();
  });
  // Viewers can neither format nor rename: the server would drop their changes anyway.
  const formatButton = readOnly ? null : h("button", { class: "button ghost", id: "format", title: "Format the code (Shift+Alt+F)" }, "Format");
  const titleLabel = h("span", { class: "session-title", id: "session-title", title: session.title }, session.title);
  const titleEditor = new TitleEditor(titleLabel, (title) => collab.meta.set("title", title), !readOnly);
  const settingsSlot = h("span");
  const editorPane = h("section", { class: "editor-pane", "aria-label": "Code" });
  const stdin = h("textarea", {
    id: "stdin",
    class: "stdin",
    spellcheck: "false",
    placeholder: readOnly ? "Viewers cannot run code" : "Text the program reads with input() / readline()",
    readonly: readOnly,
  });
  const people = new PeopleView(
    () => access.participants(),
    collab.awareness,
    me.id,
    ownerKey && access.sessionId !== null ? (person) => void removePerson(access.sessionId!, ownerKey, person) : null,
  );
  // End / Reopen, for the owner only; its words follow the session's state.
  const endButton = ownerKey ? h("button", { class: "button ghost", id: "end-session" }, "End session") : null;
  // The session's rules (where code runs, languages, how many may join), for the owner only, in a dialog.
  const rulesButton = ownerKey
    ? h(
        "button",
        {
          class: "button ghost",
          id: "session-rules",
          "aria-haspopup": "dialog",
          title: "Session rules: where code may run, the languages, how many may join",
        },
        "Rules",
      )
    : null;
  // The owner's controls sit with the people they act on, not in the toolbar, whose room is the title's.
  const ownerControls = ownerKey ? h("span", { class: "owner-controls" }, rulesButton, endButton, deleteButton) : null;
  const output = new OutputPanel(collab.runs, collab.awareness);
  const outputSection = h(
    "section",
    { class: "panel output-panel", "aria-labelledby": "output-heading" },
    h("h2", { id: "output-heading" }, "Output", h("span", { class: "muted small" }, "shared with everyone"), output.clearButton),
    output.el,
  );
  const livePublisher = new LivePublisher(collab.awareness);

  document.body.replaceChildren(
    h(
      "div",
      { class: "app" },
      h(
        "header",
        { class: "topbar" },
        h("a", { class: "brand", href: "/", title: "Code Connect Live" }, h("span", { class: "logo" }, "⌘"), h("span", { class: "brand-name" }, "Code Connect Live")),
        h("span", { class: "divider" }),
        titleEditor.el,
        readOnly ? h("span", { class: "badge", id: "read-only" }, "Read-only") : null,
        h("span", { class: "spacer" }),
        languageSelect,
        runButton,
        stopButton,
        typeErrors.el,
        formatButton,
        h("span", { class: "spacer" }),
        conn,
        people.avatars,
        h("div", { class: "share-wrap" }, shareButton, shareMenu.el),
        historyButton,
        downloadButton,
        settingsSlot,
        shortcutsButton,
      ),
      banner,
      notice.el,
      output.announcer,
      runNote,
      serverOffer.el,
      h(
        "main",
        { class: "workspace" },
        editorPane,
        h(
          "aside",
          { class: "side" },
          outputSection,
          h("section", { class: "panel stdin-panel", "aria-labelledby": "stdin-heading" }, h("h2", { id: "stdin-heading" }, h("label", { for: "stdin" }, "Input")), stdin),
          h("section", { class: "panel people-panel", "aria-labelledby": "people-heading" }, h("h2", { id: "people-heading" }, "People", ownerControls), people.list),
        ),
      ),
    ),
  );

  // --- Editor and shared state ----------------------------------------------------------------------------
  const editor = new CodeEditor({
    parent: editorPane,
    text: collab.text,
    awareness: collab.awareness,
    language: session.language,
    readOnly,
    onRun: () => void run(),
    theme: resolveTheme(loadSettings().theme),
    fontSize: loadSettings().fontSize,
    onFormat: () => void formatCode(),
    onFontStep: (step) => settingsMenu.stepFont(step),
  });
  const settingsMenu = new SettingsMenu(editor);
  settingsSlot.replaceWith(settingsMenu.el);

  // --- Formatting: the formatters load on first use; the result goes in as one minimal change ---------------
  let formatting = false;
  async function formatCode(): Promise<void> {
    if (readOnly || formatting || editor.view.state.readOnly || !formatButton) return;
    formatting = true;
    formatButton.disabled = true;
    const language = currentLanguage();
    try {
      const { formatChanges, FormatError } = await import("./format");
      // Someone may type while the formatter works: then format the new text (the formatter is loaded by now).
      for (let attempt = 0; attempt < 3; attempt++) {
        const code = editor.text;
        let changes;
        try {
          changes = await formatChanges(language, code);
        } catch (err) {
          if (!(err instanceof FormatError)) throw err;
          notice.show(`Not formatted, the code has a syntax error (${err.message})`);
          return;
        }
        if (language !== currentLanguage()) return;
        if (editor.replaceWith(code, changes)) {
          if (!changes.length) notice.show("Already formatted", 2500);
          return;
        }
      }
    } catch (err) {
      notice.show(`Cannot format: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      formatting = false;
      formatButton.disabled = !canEdit(state.snapshot);
    }
  }
  formatButton?.addEventListener("click", () => void formatCode());

  // --- Deleting the session (its owner) ----------------------------------------------------------------------
  deleteButton?.addEventListener("click", () => {
    const sessionId = access.sessionId;
    if (sessionId === null || ownerKey === null) return;
    const sure = window.confirm(
      "Delete this session for everyone? Its code, output, history and participants are removed from the server. This cannot be undone.",
    );
    if (!sure || !state.deletionStarted()) return;
    deleteButton.disabled = true;
    api.deleteSession(sessionId, ownerKey).then(
      () => leaveDeleted(sessionId),
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 404) {
          leaveDeleted(sessionId); // deleted already (by its retention, or another tab)
          return;
        }
        state.deletionFailed();
        deleteButton.disabled = false;
        notice.show(`Not deleted: ${err instanceof Error ? err.message : String(err)}`);
      },
    );
  });
  const leaveDeleted = (sessionId: string): void => {
    store.forgetSession(sessionId);
    location.assign("/");
  };

  onClosed = (code, reason) => {
    const closed = state.closedFor(code, reason);
    window.clearInterval(settingsPoll);
    if (closed.kind === "gone" && state.snapshot.deleting) return; // this page deleted it, and is leaving
    if (closed.kind === "removed") {
      // The token no longer works: a reload asks for a name again (as a new participant) rather than failing.
      store.forgetParticipant(access.key, role);
    } else if (closed.kind === "rejoin") {
      // The token is no longer valid (the server's data was reset): join again, the name is remembered.
      store.forgetParticipant(access.key, role);
      location.reload();
    } else if (closed.kind === "gone" && closed.deleted) {
      store.forgetSession(access.key);
      showProblem("This session was deleted", "Its code, output and history are no longer on the server.");
    } else if (closed.kind === "gone") {
      // A read-only link also stops when its owner makes a new one (it is seen on reconnecting).
      showProblem(
        "Session not found",
        access.sessionId === null
          ? "This read-only link no longer opens the session: it may have been deleted, or its owner made a new read-only link. Ask for the current link."
          : "This session no longer exists on the server.",
      );
    }
    // Otherwise the state's subscriber keeps the code on screen (it can still be copied or downloaded) but stops
    // editing a copy that no longer syncs, and the banner says why.
  };

  // --- The owner's controls ---------------------------------------------------------------------------------
  async function removePerson(sessionId: string, key: string, person: { id: string; name: string }): Promise<void> {
    if (!window.confirm(`Remove ${person.name} from the session? Their connection closes and their link stops working for them.`)) return;
    try {
      await api.removeParticipant(sessionId, person.id, key);
      notice.show(`${person.name} was removed from the session.`, 4000);
    } catch (err) {
      notice.show(`Could not remove ${person.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
    await people.refresh();
  }
  endButton?.addEventListener("click", () => {
    const sessionId = access.sessionId;
    if (!ownerKey || sessionId === null) return;
    const ending = !state.snapshot.ended;
    if (ending && !window.confirm("End the session? Everyone's editor becomes read-only until you reopen it.")) return;
    endButton.disabled = true;
    (ending ? api.endSession(sessionId, ownerKey) : api.reopenSession(sessionId, ownerKey))
      .then((answer) => state.sessionEnded(Boolean(answer.endedAt)))
      .catch((err: unknown) => notice.show(`Could not ${ending ? "end" : "reopen"} the session: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        endButton.disabled = false;
      });
  });

  // The dialog's code loads on first use; it opens once the rules as they apply now are known.
  let openingRules = false;
  rulesButton?.addEventListener("click", () => {
    const sessionId = access.sessionId;
    if (!ownerKey || sessionId === null || openingRules) return;
    openingRules = true;
    rulesButton.setAttribute("aria-busy", "true");
    Promise.all([import("./ui/rules"), api.sessionPolicy(sessionId)])
      .then(([{ showRules }, view]) =>
        showRules(view, rulesButton, {
          serverRunsCode: state.snapshot.serverLanguages.size > 0,
          save: (request) => api.setSessionPolicy(sessionId, ownerKey, request),
          saved: () => {
            notice.show("Session rules saved. Everyone else's page follows within 20 seconds.", 4000);
            void checkExecution(); // this page follows at once
          },
        }),
      )
      .catch((err: unknown) => notice.show(`Could not open the session rules: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        openingRules = false;
        rulesButton.removeAttribute("aria-busy");
      });
  });

  // --- History and playback, and the owner's private notes (their code loads on first use) ---------------------
  let playback: { close(): void } | null = null;
  let openingPlayback = false;
  historyButton?.addEventListener("click", () => {
    const sessionId = access.sessionId;
    if (sessionId === null || openingPlayback) return;
    if (playback) {
      playback.close();
      return;
    }
    openingPlayback = true;
    historyButton.setAttribute("aria-busy", "true");
    import("./ui/playback")
      .then(({ openPlayback }) =>
        openPlayback({
          sessionId,
          ownerKey,
          pane: editorPane,
          liveEditor: editor.view.dom,
          outputSection,
          liveOutput: output.el,
          theme: () => resolveTheme(loadSettings().theme),
          fontSize: () => loadSettings().fontSize,
          language: currentLanguage,
          notice: (text, ms) => notice.show(text, ms),
          closed: () => {
            playback = null;
            historyButton.setAttribute("aria-pressed", "false");
            historyButton.focus();
          },
        }),
      )
      .then((opened) => {
        playback = opened;
        historyButton.setAttribute("aria-pressed", "true");
      })
      .catch((err: unknown) => {
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) historyButton.hidden = true;
        notice.show(`Cannot play back the history: ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => {
        openingPlayback = false;
        historyButton.removeAttribute("aria-busy");
      });
  });
  if (historyButton && ownerKey === null && access.sessionId !== null && !readOnly) {
    // A participant: shown only where the server lets participants read the history.
    api.history(access.sessionId, null, undefined, 1).then(
      () => (historyButton.hidden = false),
      () => undefined,
    );
  }
  if (ownerKey && access.sessionId !== null) {
    const sessionId = access.sessionId;
    void import("./ui/notes").then(({ NotesPanel }) => {
      const notes = new NotesPanel(sessionId, ownerKey, (text, ms) => notice.show(text, ms));
      outputSection.after(notes.el);
      void notes.start();
    });
  }

  const currentLanguage = (): Language => {
    const value = collab.meta.get("language");
    return isLanguage(value) ? value : editor.language;
  };

  const runners = new Runners(() => usableServerLanguages(state.snapshot));

  // The workspace's policy may allow only some languages: the others stay in the list (the session may already
  // use one), greyed out and saying why.
  const offerLanguages = (allowed: readonly string[] | null): void => {
    for (const option of languageSelect.options) {
      const forbidden = allowed !== null && !allowed.includes(option.value);
      option.disabled = forbidden;
      option.title = forbidden ? "This session's policy does not allow this language" : "";
    }
  };

  // The owner can turn running off for the session; the server enforces it for server runs, the page for all.
  const checkExecution = async (): Promise<void> => {
    // A read-only link has no session id to ask with, and nothing to run.
    if (access.sessionId === null) return;
    try {
      const settings = await api.sessionSettings(access.sessionId);
      output.setClearable(!readOnly && settings.allowClearOutput !== false);
      state.executionSettings(settings.executionEnabled, settings.execution);
      offerLanguages(settings.languages ?? null);
    } catch {
      return; // Unreachable server: keep the last known state.
    }
  };
  // Some inputs of the run controls live outside the state (which runners are loaded or failing): a view
  // re-render on demand covers them.
  const renderRunControls = (): void => {
    const view = runControls(state.snapshot, (language) => runners.unavailable(language));
    runButton.disabled = view.runDisabled;
    stopButton.disabled = view.stopDisabled;
    runNote.textContent = view.note;
    runNote.hidden = !view.note;
    runButton.title = view.runTitle;
    typeErrors.show(view.showTypeErrors);
    if (!view.keepServerOffer) serverOffer.hide();
  };
  state.subscribe((now, before) => {
    if (now.language !== before.language) {
      editor.setLanguage(now.language);
      languageSelect.value = now.language;
    }
    if (now.title !== before.title) {
      // The label itself, not a query: it is out of the page while someone is typing a new title.
      titleLabel.textContent = now.title;
      titleLabel.title = now.title;
      document.title = `${now.title} · Code Connect Live`;
    }
    // The first call (now === before) sets up a page opened on an ended session.
    if (now === before || now.ended !== before.ended || now.closed !== before.closed) {
      const editable = canEdit(now);
      editor.setReadOnly(!editable);
      titleEditor.setEditable(editable);
      languageSelect.disabled = !editable;
      if (formatButton) formatButton.disabled = !editable;
      stdin.readOnly = !editable;
      const text = bannerText(now, Boolean(ownerKey));
      banner.hidden = !text;
      banner.textContent = text;
      banner.classList.toggle("ended", now.closed === null && now.ended);
      document.body.dataset.ended = String(now.ended);
      if (endButton) {
        endButton.textContent = now.ended ? "Reopen session" : "End session";
        endButton.hidden = now.closed !== null;
      }
      if (rulesButton) rulesButton.hidden = now.closed !== null;
    }
    if (now.link !== before.link) {
      const { text, state: badge } = linkText(now.link);
      conn.dataset.state = badge;
      conn.querySelector(".conn-text")!.textContent = text;
    }
    renderRunControls();
  });

  const applyMeta = (): void => state.meta(currentLanguage(), collab.meta.get("title"));
  collab.meta.observe(applyMeta);
  announceLanguageSwitches(collab, me.id, (text) => notice.show(text));

  languageSelect.addEventListener("change", () => {
    const next = languageSelect.value;
    if (!isLanguage(next) || !canEdit(state.snapshot)) return;
    const previous = currentLanguage();
    collab.doc.transact(() => {
      collab.meta.set("language", next);
      // Swap the starter program when nobody has written anything yet, as people expect from a fresh pad.
      const code = collab.text.toString().trim();
      if (code === "" || code === languageInfo(previous).starter.trim()) {
        collab.text.delete(0, collab.text.length);
        collab.text.insert(0, languageInfo(next).starter);
      }
    });
    applyMeta();
    if (config.preloadRunners) runners.warm(next);
  });

  collab.onStatus((status) => {
    state.connection(status);
    if (status.synced && state.snapshot.ended) {
      // A reopen told while this page was offline is not told again: ask. (An end is: the server says it to every
      // connection it admits.)
      access.load().then((info) => state.sessionEnded(Boolean(info.endedAt)), () => undefined);
    }
    if (status.synced) {
      applyMeta();
      output.announcing = true;
    }
  });

  downloadButton.addEventListener("click", () => {
    download(fileName(currentLanguage(), titleLabel.textContent || session.title), collab.text.toString());
  });

  // --- Running ----------------------------------------------------------------------------------------------
  /** ``onServer``: a Python program the browser cannot run (it imports numpy), sent to the server's sandbox. */
  async function run(onServer = false): Promise<void> {
    const language = currentLanguage();
    const sessionId = access.sessionId;
    if (sessionId === null || runners.unavailable(language) || !state.runStarted()) return;
    await checkExecution();
    if (state.snapshot.executionOff) {
      state.runEnded();
      return;
    }
    serverOffer.hide();
    // One id for the live card everyone sees and the final record that replaces it (a server run's too).
    const runId = randomId();
    const input = stdin.value;
    output.beginLive(me.name, me.color, language, runId);
    const startedAt = new Date().toISOString();
    livePublisher.begin(runId, language, startedAt);
    const livePhase = (t: string): LivePhase => (t.startsWith("Loading") ? "loading" : t.startsWith("Stopping") ? "stopping" : "running");
    try {
      const outcome = await runners.run(
        {
          code: collab.text.toString(),
          language,
          stdin: input,
          limitMs: config.runTimeLimitSeconds * 1000,
          sessionId,
          token: me.token,
          runId,
        },
        {
          phase: (t) => {
            output.livePhaseText(t);
            livePublisher.phase(livePhase(t));
          },
          output: (s, t) => {
            output.liveOutput(s, t);
            livePublisher.write(s, t);
          },
        },
        onServer,
      );
      if (outcome.missingModule && runners.serverRuns(language)) {
        serverOffer.show(outcome.missingModule, () => void run(true));
      }
      if (!outcome.shared) appendRun(collab.doc, collab.runs, {
        id: runId,
        stdin: input,
        by: { participantId: me.id, name: me.name, color: me.color },
        source: outcome.source,
        language,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        ...(outcome.output ? { output: outcome.output } : {}),
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        signalName: outcome.signalName,
        timedOut: outcome.timedOut,
        outputTruncated: outcome.outputTruncated,
        outcome: outcome.outcome,
        compileOutput: outcome.compileOutput,
        durationMs: outcome.durationMs,
        startedAt,
      });
    } finally {
      // After the record: the others' live card goes when its final card is there, not before.
      livePublisher.end();
      output.endLive();
      state.runEnded();
    }
  }
  runButton.addEventListener("click", () => void run());
  stopButton.addEventListener("click", () => runners.stop());
  output.clearButton.addEventListener("click", () => {
    if (access.sessionId === null || readOnly) return;
    api.clearRuns(access.sessionId, me.token).catch((err: unknown) => {
      if (err instanceof ApiError && err.code === "clear_output_disabled") output.setClearable(false);
      notice.show(err instanceof Error ? `Could not clear the output: ${err.message}` : "Could not clear the output.");
    });
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.defaultPrevented) {
      event.preventDefault();
      void run();
    }
  });
  // Select all means the code: a page-wide selection (toolbar, people, output) is never what is wanted, and a
  // read-only editor does not keep the focus that would scope it. Text fields keep their own select all.
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (
      event.key.toLowerCase() !== "a" ||
      !(event.ctrlKey || event.metaKey) ||
      event.altKey ||
      event.shiftKey ||
      event.defaultPrevented ||
      target instanceof HTMLInputElement ||
      target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement
    ) {
      return;
    }
    event.preventDefault();
    editor.selectAll();
  });

  if (ownerLinkProblem) notice.show(ownerLinkProblem, 15_000);
  else if (ownerCode && ownerKey) notice.show("This browser now has the owner's controls of this session.", 6000);
  void checkExecution();
  // Until the connection closes for good (onClosed stops it) or the page goes.
  settingsPoll = window.setInterval(() => void checkExecution(), 20_000);
  window.addEventListener("pagehide", () => window.clearInterval(settingsPoll));
  api.serverLanguages().then(
    (info) => {
      state.serverRuns(info.enabled ? info.languages.filter((l) => l.available).map((l) => l.language) : []);
    },
    () => {
      // No server-side execution on this deployment: Java and C++ say so on the Run button.
    },
  );
  // Load the current language's runner once the page is idle, so the first Run does not wait for it.
  const idle = (cb: () => void): void => {
    if ("requestIdleCallback" in window) window.requestIdleCallback(cb, { timeout: 3000 });
    else setTimeout(cb, 1500);
  };
  if (!readOnly && config.preloadRunners) idle(() => runners.warm(currentLanguage()));
  editor.focus();
  document.body.dataset.ready = "true";
  performance.mark("ccl-editor-ready");
}
