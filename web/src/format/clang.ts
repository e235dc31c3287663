// C++ and Java through clang-format (compiled to WebAssembly), served from our own assets folder.
import init, { format } from "@wasm-fmt/clang-format/web";
import wasmUrl from "@wasm-fmt/clang-format/clang-format.wasm?url";
import { FormatError } from "./errors";

// The editor indents these languages by four spaces; the rest is Google's style.
const STYLE = "{BasedOnStyle: Google, IndentWidth: 4, ContinuationIndentWidth: 8, ColumnLimit: 100, AccessModifierOffset: -4}";

export async function load(language: "cpp" | "java"): Promise<(code: string) => string> {
  await init(wasmUrl);
  const filename = language === "java" ? "Main.java" : "main.cpp";
  return (code) => {
    // clang-format formats whatever it is given, broken code included; a broken program must stay as written.
    const problem = bracketProblem(code, language);
    if (problem) throw new FormatError(problem);
    try {
      return format(code, filename, STYLE);
    } catch (err) {
      throw new FormatError(err instanceof Error ? (err.message.split("\n")[0] ?? err.message) : String(err));
    }
  };
}

const CLOSING: Record<string, string> = { ")": "(", "]": "[", "}": "{" };

/**
 * The first unbalanced bracket outside strings, character literals and comments, as "line N: ...", or null.
 * This is the syntax error that formatting would make worse: clang-format re-indents everything after it.
 */
export function bracketProblem(code: string, language: "cpp" | "java"): string | null {
  const stack: { ch: string; line: number }[] = [];
  let line = 1;
  let i = 0;
  const n = code.length;
  while (i < n) {
    const c = code[i]!;
    if (c === "\n") {
      line++;
      i++;
    } else if (c === "/" && code[i + 1] === "/") {
      while (i < n && code[i] !== "\n") i++;
    } else if (c === "/" && code[i + 1] === "*") {
      const end = code.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      for (let j = i; j < stop; j++) if (code[j] === "\n") line++;
      i = stop;
      if (end < 0) return `line ${line}: unterminated comment`;
    } else if (language === "cpp" && c === "R" && code[i + 1] === '"') {
      // Raw string R"delim( ... )delim": brackets inside are text.
      const open = code.indexOf("(", i + 2);
      const delim = open < 0 ? "" : code.slice(i + 2, open);
      const end = open < 0 ? -1 : code.indexOf(`)${delim}"`, open + 1);
      if (end < 0) return `line ${line}: unterminated raw string`;
      const stop = end + delim.length + 2;
      for (let j = i; j < stop; j++) if (code[j] === "\n") line++;
      i = stop;
    } else if (language === "java" && code.startsWith('"""', i)) {
      const end = code.indexOf('"""', i + 3);
      if (end < 0) return `line ${line}: unterminated text block`;
      for (let j = i; j < end + 3; j++) if (code[j] === "\n") line++;
      i = end + 3;
    } else if (c === '"' || c === "'") {
      // A C++14 digit separator (1'000'000) is not a character literal.
      if (c === "'" && language === "cpp" && /[0-9a-fA-F]/.test(code[i - 1] ?? "") && /[0-9a-fA-F]/.test(code[i + 1] ?? "")) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < n && code[j] !== c && code[j] !== "\n") j += code[j] === "\\" ? 2 : 1;
      if (j >= n || code[j] !== c) return `line ${line}: unterminated ${c === '"' ? "string" : "character literal"}`;
      i = j + 1;
    } else if (c === "(" || c === "[" || c === "{") {
      stack.push({ ch: c, line });
      i++;
    } else if (c === ")" || c === "]" || c === "}") {
      const top = stack.pop();
      if (!top) return `line ${line}: unexpected "${c}"`;
      if (top.ch !== CLOSING[c]) return `line ${line}: "${c}" does not close "${top.ch}" from line ${top.line}`;
      i++;
    } else {
      i++;
    }
  }
  const open = stack.pop();
  return open ? `line ${open.line}: "${open.ch}" is never closed` : null;
}
