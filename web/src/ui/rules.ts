// The owner's session rules, in a modal dialog: where code may run, the languages, how many may join, never
// beyond what the workspace allows. Closed with Escape, Cancel or the close button, and the focus goes back to the
// button that opened it. Loaded on first use.
import { ApiError, type SessionPolicyRequest } from "../api";
import type { Language, SessionPolicyView } from "../contracts.gen";
import { languageInfo } from "../languages";
import { executionChoices, formOf, formProblem, languageChoices, requestOf, saveErrorText, workspaceForm, type FormProblem, type RulesForm } from "../rules";
import { h, keepTabIn } from "./dom";
import "./rules.css";

export interface RulesTarget {
  /** Whether this server runs code itself (else "on the server" is off whatever the workspace says). */
  serverRunsCode: boolean;
  save(request: SessionPolicyRequest): Promise<SessionPolicyView>;
  /** The rules were saved: the page follows them. */
  saved(view: SessionPolicyView): void;
}

export function showRules(view: SessionPolicyView, opener: HTMLElement, target: RulesTarget): void {
  document.getElementById("rules-dialog")?.remove();
  const { workspace } = view;
  const form0 = formOf(view);

  const executionInputs = executionChoices(workspace, target.serverRunsCode).map((choice) => {
    const hintId = `rules-execution-${choice.value}-hint`;
    const input = h("input", {
      type: "radio",
      name: "execution",
      value: choice.value,
      id: `rules-execution-${choice.value}`,
      disabled: choice.unavailable !== null,
      "aria-describedby": hintId,
    });
    const row = h(
      "label",
      { class: `rules-choice${choice.unavailable ? " unavailable" : ""}`, for: input.id },
      input,
      h(
        "span",
        { class: "rules-choice-text" },
        h("span", {}, choice.label),
        h("span", { class: "rules-hint", id: hintId }, choice.unavailable ?? choice.hint),
      ),
    );
    return { input, row };
  });

  const offered = languageChoices(workspace);
  const languageInputs = offered.map((name) => ({
    name,
    input: h("input", { type: "checkbox", name: "languages", value: name, id: `rules-language-${name}` }),
  }));

  const most = workspace.maxParticipants;
  const maxInput = h("input", {
    type: "number",
    id: "rules-max",
    min: 1,
    max: most,
    step: 1,
    inputmode: "numeric",
    required: true,
    "aria-describedby": "rules-max-hint",
  });
  const error = h("p", { class: "error rules-error", id: "rules-error", role: "alert" });
  const closeButton = h("button", { type: "button", class: "button ghost small rules-close", id: "rules-close", "aria-label": "Close" }, "✕");
  const resetButton = h(
    "button",
    { type: "button", class: "button ghost small", id: "rules-reset", title: "Set every rule back to what the workspace allows" },
    "Allow all",
  );
  const cancelButton = h("button", { type: "button", class: "button small", id: "rules-cancel" }, "Cancel");
  const saveButton = h("button", { type: "submit", class: "button primary small", id: "rules-save" }, "Save rules");

  const form = h(
    "form",
    { id: "rules-form", novalidate: true },
    h("header", { class: "rules-head" }, h("h2", { id: "rules-title" }, "Session rules"), closeButton),
    h(
      "p",
      { class: "rules-intro", id: "rules-intro" },
      "For everyone in this session, within what its workspace allows. Other pages follow within 20 seconds.",
    ),
    h("fieldset", { class: "rules-group", id: "rules-execution" }, h("legend", {}, "Where code may run"), ...executionInputs.map((c) => c.row)),
    h(
      "fieldset",
      { class: "rules-group", id: "rules-languages" },
      h("legend", {}, "Languages"),
      h(
        "div",
        { class: "rules-languages" },
        ...languageInputs.map(({ name, input }) => h("label", { class: "rules-language", for: input.id }, input, languageInfo(name).label)),
      ),
      workspace.languages === null ? null : h("span", { class: "rules-hint" }, "Only these are allowed in this workspace."),
    ),
    h(
      "div",
      { class: "rules-group" },
      h("label", { class: "rules-label", for: maxInput.id }, "Most participants"),
      h(
        "div",
        { class: "rules-max" },
        maxInput,
        h("span", { class: "rules-hint", id: "rules-max-hint" }, `Up to ${most}. Nobody already in is removed; later joins wait for a place.`),
      ),
    ),
    error,
    h("footer", { class: "rules-actions" }, resetButton, h("span", { class: "rules-spacer" }), cancelButton, saveButton),
  );
  const dialog = h("dialog", { class: "rules-dialog", id: "rules-dialog", "aria-labelledby": "rules-title", "aria-describedby": "rules-intro" }, form);

  const fill = (values: RulesForm): void => {
    for (const { input } of executionInputs) input.checked = input.value === values.execution;
    for (const { name, input } of languageInputs) input.checked = values.languages.includes(name);
    maxInput.value = String(values.maxParticipants);
  };
  const read = (): { execution: RulesForm["execution"]; languages: Language[]; maxParticipants: string } => ({
    execution: (executionInputs.find(({ input }) => input.checked)?.input.value ?? form0.execution) as RulesForm["execution"],
    languages: languageInputs.filter(({ input }) => input.checked).map(({ name }) => name),
    maxParticipants: maxInput.value,
  });
  const showError = (problem: FormProblem | string | null): void => {
    error.textContent = problem === null ? "" : typeof problem === "string" ? problem : problem.text;
    const field = typeof problem === "object" ? problem?.field : undefined;
    maxInput.setAttribute("aria-invalid", String(field === "maxParticipants"));
  };
  fill(form0);

  let saving = false;
  form.addEventListener("input", () => showError(null));
  resetButton.addEventListener("click", () => {
    fill(workspaceForm(workspace));
    showError(null);
  });
  closeButton.addEventListener("click", () => dialog.close());
  cancelButton.addEventListener("click", () => dialog.close());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (saving) return;
    const values = read();
    const problem = formProblem(values, workspace);
    if (problem) {
      showError(problem);
      (problem.field === "languages" ? languageInputs[0]?.input : maxInput)?.focus();
      return;
    }
    saving = true;
    saveButton.disabled = true;
    saveButton.textContent = "Saving…";
    target
      .save(requestOf({ ...values, maxParticipants: Number(values.maxParticipants) }, workspace))
      .then(
        (answer) => {
          dialog.close();
          target.saved(answer);
        },
        (err: unknown) => showError(err instanceof ApiError ? saveErrorText(err) : `The rules were not saved: ${String(err)}`),
      )
      .finally(() => {
        saving = false;
        saveButton.disabled = false;
        saveButton.textContent = "Save rules";
      });
  });
  dialog.addEventListener("keydown", (event) => keepTabIn(dialog, event));
  // Closing hands the focus back to the button that opened the rules, unless it has moved on already (a click).
  dialog.addEventListener("close", () => {
    const now = document.activeElement;
    if (!now || now === document.body || dialog.contains(now)) opener.focus();
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  // The current choice of where code runs takes the focus: the first thing to change, and Escape is one key away.
  (executionInputs.find(({ input }) => input.checked)?.input ?? closeButton).focus();
}
