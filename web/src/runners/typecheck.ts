// TypeScript type checking as the page sees it: the messages to and from the checker worker, how its findings
// are shown, and the person's "stop on type errors" choice (the checker itself is in typechecker.ts).

export interface CheckRequest {
  id: number;
  code: string;
}

export interface Diagnostic {
  /** 1-based line in the program, or null for a problem that is not in one place. */
  line: number | null;
  code: number;
  message: string;
}

export interface CheckReply {
  /** 0 announces that the worker has loaded the compiler. */
  id: number;
  diagnostics: Diagnostic[];
  /** How long the check took in the worker. */
  ms: number;
  /** The checker itself failed; the program runs unchecked. */
  failed?: string;
}

export interface CheckResult {
  diagnostics: Diagnostic[];
  /** What to show before the program's output: one line per error, or a note that nothing was checked. */
  text: string;
}

const STOP_KEY = "ccl.stopOnTypeErrors";

export const typeErrorsPreference = {
  stop(): boolean {
    try {
      return localStorage.getItem(STOP_KEY) === "true";
    } catch {
      return false;
    }
  },
  setStop(value: boolean): void {
    try {
      localStorage.setItem(STOP_KEY, String(value));
    } catch {
      // Storage disabled: the choice lasts until the page is closed.
    }
  },
};

export function describeDiagnostics(diagnostics: readonly Diagnostic[]): string {
  return diagnostics
    .map((d) => `${d.line === null ? "" : `line ${d.line}: `}${d.message} (TS${d.code})\n`)
    .join("");
}
