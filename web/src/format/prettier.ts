// JavaScript and TypeScript through Prettier's browser build, with only the parser the language needs.
import type { Plugin } from "prettier";
import { format } from "prettier/standalone";
import * as estree from "prettier/plugins/estree";
import { FormatError } from "./errors";

export async function load(typescript: boolean): Promise<(code: string) => Promise<string>> {
  const parser: Plugin = typescript ? await import("prettier/plugins/typescript") : await import("prettier/plugins/babel");
  const plugins = [parser, estree as Plugin];
  return async (code) => {
    try {
      return await format(code, { parser: typescript ? "typescript" : "babel", plugins, printWidth: 100 });
    } catch (err) {
      throw new FormatError(prettierMessage(err));
    }
  };
}

function prettierMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Prettier's message is the parser's, then a code frame: keep the first line, which ends with (line:column).
  const first = (err.message.split("\n")[0] ?? err.message).trim();
  const loc = (err as { loc?: { start?: { line?: number } } }).loc?.start?.line;
  const bare = first.replace(/\s*\(\d+:\d+\)$/, "");
  return loc ? `line ${loc}: ${bare}` : bare;
}
