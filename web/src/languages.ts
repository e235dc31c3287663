// The five session languages, as the server names them (generated from its table), with what the page needs
// to know about each.
import { type Language, LANGUAGE_FACTS, type LanguageFacts } from "./contracts.gen";

export type { Language };

export interface LanguageInfo extends LanguageFacts {
  /** Where a run happens when the server does not run code. */
  browserRunner: "python" | "javascript" | "typescript" | null;
}

const BROWSER_RUNNERS: Record<Language, LanguageInfo["browserRunner"]> = {
  python: "python",
  javascript: "javascript",
  typescript: "typescript",
  java: null,
  cpp: null,
};

export const LANGUAGES: readonly LanguageInfo[] = LANGUAGE_FACTS.map((facts) => ({
  ...facts,
  browserRunner: BROWSER_RUNNERS[facts.name],
}));

export function languageInfo(name: string): LanguageInfo {
  return LANGUAGES.find((l) => l.name === name) ?? (LANGUAGES[0] as LanguageInfo);
}

export function isLanguage(name: unknown): name is Language {
  return typeof name === "string" && LANGUAGES.some((l) => l.name === name);
}
