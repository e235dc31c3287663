// Formatting, loaded only when someone formats: each formatter (and its wasm) is fetched on its first use.
import type { Language } from "../languages";
import { minimalChanges, type TextChange } from "./diff";
import { FormatError } from "./errors";

export { FormatError };
export type { TextChange };

type Formatter = (code: string) => string | Promise<string>;

const loaded = new Map<Language, Promise<Formatter>>();

/** How long each formatter took to load on its first use, for the page's own measurements. */
export const loadTimes: Partial<Record<Language, number>> = {};

function loader(language: Language): Promise<Formatter> {
  switch (language) {
    case "python":
      return import("./python").then((m) => m.load());
    case "javascript":
    case "typescript":
      return import("./prettier").then((m) => m.load(language === "typescript"));
    case "java":
    case "cpp":
      return import("./clang").then((m) => m.load(language));
  }
}

function formatter(language: Language): Promise<Formatter> {
  let pending = loaded.get(language);
  if (!pending) {
    const started = performance.now();
    pending = loader(language).then((f) => {
      loadTimes[language] = Math.round(performance.now() - started);
      performance.measure(`ccl-format-load-${language}`, { start: started });
      return f;
    });
    // A failed load (network gone) may succeed next time.
    pending.catch(() => loaded.delete(language));
    loaded.set(language, pending);
  }
  return pending;
}

/** The formatted code; throws FormatError when the code does not parse. */
export async function formatCode(language: Language, code: string): Promise<string> {
  const format = await formatter(language);
  return format(code);
}

/** The changes that turn ``code`` into its formatted version (empty when it is already formatted). */
export async function formatChanges(language: Language, code: string): Promise<TextChange[]> {
  return minimalChanges(code, await formatCode(language, code));
}
