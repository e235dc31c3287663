import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api";
import type { EffectivePolicy, SessionPolicyView } from "../src/contracts.gen";
import { executionChoices, formOf, formProblem, languageChoices, requestOf, saveErrorText, workspaceForm } from "../src/rules";

const open: EffectivePolicy = { execution: "sandbox", languages: null, maxParticipants: 50 };
const classroom: EffectivePolicy = { execution: "browser", languages: ["python", "java", "javascript"], maxParticipants: 6 };

function view(workspace: EffectivePolicy, effective: EffectivePolicy = workspace): SessionPolicyView {
  return { session: { execution: null, languages: null, maxParticipants: null }, workspace, effective };
}

describe("executionChoices", () => {
  it("offers every choice, most open first, where the workspace allows the server", () => {
    const choices = executionChoices(open, true);
    expect(choices.map((c) => c.value)).toEqual(["sandbox", "browser", "none"]);
    expect(choices.every((c) => c.unavailable === null)).toBe(true);
  });

  it("says why a choice beyond the workspace is off", () => {
    const [server, browsers, nowhere] = executionChoices(classroom, true);
    expect(server?.unavailable).toBe("The workspace allows running code only in browsers.");
    expect(browsers?.unavailable).toBeNull();
    expect(nowhere?.unavailable).toBeNull();
    expect(executionChoices(classroom, false)[0]?.unavailable).toBe("This server does not run code itself.");
    const none = executionChoices({ ...open, execution: "none" }, true);
    expect(none.map((c) => c.unavailable)).toEqual([
      "The workspace does not allow running code.",
      "The workspace does not allow running code.",
      null,
    ]);
  });
});

describe("the form", () => {
  it("offers only the workspace's languages, in the page's order", () => {
    expect(languageChoices(open)).toEqual(["python", "javascript", "typescript", "java", "cpp"]);
    expect(languageChoices(classroom)).toEqual(["python", "javascript", "java"]);
  });

  it("starts from the rules that apply now", () => {
    expect(formOf(view(classroom))).toEqual({ execution: "browser", languages: ["python", "javascript", "java"], maxParticipants: 6 });
    const narrowed = view(classroom, { execution: "none", languages: ["java"], maxParticipants: 2 });
    expect(formOf(narrowed)).toEqual({ execution: "none", languages: ["java"], maxParticipants: 2 });
    // The workspace later dropped every language the owner kept: nothing is ticked, and saving asks for one.
    expect(formOf(view(classroom, { ...classroom, languages: [] })).languages).toEqual([]);
  });

  it("sends only what narrows the workspace, so a rule set back to it follows the workspace again", () => {
    expect(requestOf(workspaceForm(classroom), classroom)).toEqual({});
    expect(requestOf({ execution: "none", languages: ["python"], maxParticipants: 6 }, classroom)).toEqual({
      execution: "none",
      languages: ["python"],
    });
    expect(requestOf({ execution: "sandbox", languages: ["cpp", "python"], maxParticipants: 3 }, open)).toEqual({
      languages: ["python", "cpp"],
      maxParticipants: 3,
    });
  });

  it("needs a language and a number of participants within the workspace's", () => {
    const ok = { languages: ["python" as const], maxParticipants: "6" };
    expect(formProblem(ok, classroom)).toBeNull();
    expect(formProblem({ ...ok, languages: [] }, classroom)).toEqual({ field: "languages", text: "Choose at least one language." });
    for (const bad of ["0", "7", "", "2.5", "-1", "two"]) {
      expect(formProblem({ ...ok, maxParticipants: bad }, classroom)).toEqual({
        field: "maxParticipants",
        text: "Enter a number of participants from 1 to 6.",
      });
    }
    expect(formProblem({ ...ok, maxParticipants: " 1 " }, { ...classroom, maxParticipants: 1 })).toBeNull();
  });
});

describe("saveErrorText", () => {
  it("puts a refusal in plain words", () => {
    expect(saveErrorText(new ApiError(403, "forbidden_by_policy", "A session's owner can narrow…"))).toMatch(/^The workspace does not allow rules this open/);
    expect(saveErrorText(new ApiError(403, "owner_key_invalid", "Wrong key."))).toMatch(/owner key is no longer accepted/);
    expect(saveErrorText(new ApiError(422, "validation_error", "Invalid body.languages: too short."))).toBe(
      "The server did not accept these rules: Invalid body.languages: too short.",
    );
    expect(saveErrorText(new ApiError(0, "network_error", "…"))).toMatch(/cannot be reached/);
    expect(saveErrorText(new ApiError(500, "internal_error", "The server failed to handle this request."))).toBe(
      "The rules were not saved: The server failed to handle this request.",
    );
  });
});
