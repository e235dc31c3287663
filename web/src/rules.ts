// The session rules an owner sets (where code may run, the languages, how many may join): what the form offers
// within the workspace's policy, what it sends, and its errors in plain words. No DOM here: unit-tested in web/test.
import type { ApiError, SessionPolicyRequest } from "./api";
import { EXECUTIONS, type EffectivePolicy, type Execution, type Language, type SessionPolicyView } from "./contracts.gen";
import { LANGUAGES } from "./languages";

/** The form's values. */
export interface RulesForm {
  execution: Execution;
  languages: Language[];
  maxParticipants: number;
}

export interface ExecutionChoice {
  value: Execution;
  label: string;
  hint: string;
  /** Why it cannot be chosen (null: it can). */
  unavailable: string | null;
}

const EXECUTION_WORDS: Record<Execution, [label: string, hint: string]> = {
  sandbox: ["Anywhere allowed", "In each person's browser, and on the server for what browsers cannot run"],
  browser: ["Only in browsers", "In each person's browser, never on the server"],
  none: ["Nowhere", "Run is off for everyone"],
};

/** The choices of where code may run, most open first; those beyond the workspace say why they are off.
 * ``serverRunsCode``: whether this server runs code at all (else the workspace is not what keeps it off). */
export function executionChoices(workspace: EffectivePolicy, serverRunsCode: boolean): ExecutionChoice[] {
  const most = EXECUTIONS.indexOf(workspace.execution);
  return [...EXECUTIONS].reverse().map((value) => {
    const [label, hint] = EXECUTION_WORDS[value];
    let unavailable: string | null = null;
    if (EXECUTIONS.indexOf(value) > most) {
      if (value === "sandbox" && !serverRunsCode) unavailable = "This server does not run code itself.";
      else if (workspace.execution === "none") unavailable = "The workspace does not allow running code.";
      else unavailable = "The workspace allows running code only in browsers.";
    }
    return { value, label, hint, unavailable };
  });
}

/** The languages the owner may tick: those the workspace allows, in the page's order. */
export function languageChoices(workspace: EffectivePolicy): Language[] {
  return LANGUAGES.map((l) => l.name).filter((name) => workspace.languages === null || workspace.languages.includes(name));
}

/** The form as the rules apply now. */
export function formOf(view: SessionPolicyView): RulesForm {
  const offered = languageChoices(view.workspace);
  const { effective } = view;
  return {
    execution: effective.execution,
    languages: offered.filter((name) => effective.languages === null || effective.languages.includes(name)),
    maxParticipants: Math.min(effective.maxParticipants, view.workspace.maxParticipants),
  };
}

/** The form set to everything the workspace allows (saving it follows the workspace again). */
export function workspaceForm(workspace: EffectivePolicy): RulesForm {
  return { execution: workspace.execution, languages: languageChoices(workspace), maxParticipants: workspace.maxParticipants };
}

export interface FormProblem {
  field: "languages" | "maxParticipants";
  text: string;
}

/** Why the form cannot be saved as it is (null: it can). ``maxParticipants`` is the field's text. */
export function formProblem(
  form: { languages: readonly Language[]; maxParticipants: string },
  workspace: EffectivePolicy,
): FormProblem | null {
  if (form.languages.length === 0) return { field: "languages", text: "Choose at least one language." };
  const text = form.maxParticipants.trim();
  const most = workspace.maxParticipants;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > most) {
    return {
      field: "maxParticipants",
      text: most === 1 ? "This workspace allows only 1 participant: enter 1." : `Enter a number of participants from 1 to ${most}.`,
    };
  }
  return null;
}

/** What to send: only what narrows the workspace's policy, so a rule set back to the workspace's follows it again
 * (and everything back to it sends `{}`). */
export function requestOf(form: RulesForm, workspace: EffectivePolicy): SessionPolicyRequest {
  const request: SessionPolicyRequest = {};
  if (form.execution !== workspace.execution) request.execution = form.execution;
  const offered = languageChoices(workspace);
  if (offered.some((name) => !form.languages.includes(name))) {
    request.languages = offered.filter((name) => form.languages.includes(name));
  }
  if (form.maxParticipants < workspace.maxParticipants) request.maxParticipants = form.maxParticipants;
  return request;
}

/** A refused save, in plain words. */
export function saveErrorText(err: ApiError): string {
  switch (err.code) {
    case "forbidden_by_policy":
      return "The workspace does not allow rules this open; its limits may have just changed. Close and reopen the rules to see them.";
    case "owner_key_required":
    case "owner_key_invalid":
      return "This browser's owner key is no longer accepted for this session, so its rules cannot be changed from here.";
    case "session_not_found":
      return "This session no longer exists.";
    case "network_error":
      return "The server cannot be reached. Check your connection and try again.";
    default:
      if (err.status === 422) return `The server did not accept these rules: ${err.message}`;
      if (err.status === 429 || err.status === 503) return "The server is busy; try again in a moment.";
      return `The rules were not saved: ${err.message}`;
  }
}
