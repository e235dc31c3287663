/// <reference lib="webworker" />
// Type-checks a TypeScript program before it runs, with the TypeScript compiler itself (its JS API, 5.9), in a
// worker of its own: the compiler and its standard library declarations are several megabytes, loaded only when
// a TypeScript program is about to run. The program is checked against what the JS runner really offers:
// ECMAScript 2023 and the globals js.worker.ts defines (console, readline, prompt, timers), not the DOM.
import ts from "typescript";
import type { CheckReply, CheckRequest } from "./typecheck";

declare const self: DedicatedWorkerGlobalScope;

const FILE = "main.ts";
const GLOBALS_FILE = "runner-globals.d.ts";

// The library declarations the checker reads, bundled as text: nothing is fetched at check time. The *.full
// variants are left out: they pull in the DOM, which the runner does not have.
const libTexts = import.meta.glob(
  [
    "/node_modules/typescript/lib/lib.es5.d.ts",
    "/node_modules/typescript/lib/lib.decorators*.d.ts",
    "/node_modules/typescript/lib/lib.es20{15,16,17,18,19,20,21,22,23}*.d.ts",
    "!/node_modules/typescript/lib/*.full.d.ts",
  ],
  { query: "?raw", import: "default", eager: true },
) as Record<string, string>;

const LIBS = new Map<string, string>(
  Object.entries(libTexts).map(([path, text]) => [path.slice(path.lastIndexOf("/") + 1), text]),
);

// The globals of the QuickJS runner (js.worker.ts's prelude), as a program sees them.
LIBS.set(
  GLOBALS_FILE,
  `
interface Console {
  log(...data: any[]): void;
  info(...data: any[]): void;
  debug(...data: any[]): void;
  trace(...data: any[]): void;
  warn(...data: any[]): void;
  error(...data: any[]): void;
}
declare var console: Console;
/** The next line of the Input box, or null at its end. */
declare function readline(): string | null;
/** Writes message (if any), then returns the next line of the Input box, or null at its end. */
declare function prompt(message?: string): string | null;
declare function setTimeout<A extends any[]>(callback: (...args: A) => void, ms?: number, ...args: A): number;
declare function setInterval<A extends any[]>(callback: (...args: A) => void, ms?: number, ...args: A): number;
declare function clearTimeout(id: number | undefined): void;
declare function clearInterval(id: number | undefined): void;
declare function queueMicrotask(callback: () => void): void;
`,
);

const OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  // Every program is a module: top-level await type-checks, and its names never clash with the globals.
  moduleDetection: ts.ModuleDetectionKind.Force,
  lib: ["lib.es2023.d.ts", GLOBALS_FILE],
  strict: true,
  noEmit: true,
  types: [],
  skipLibCheck: true,
};

// Parsed library files are kept between checks: parsing lib.es5.d.ts and friends is most of a first check.
const parsed = new Map<string, ts.SourceFile>();
let previous: ts.Program | undefined;

function host(code: string): ts.CompilerHost {
  return {
    getSourceFile(name, languageVersion) {
      if (name === FILE) return ts.createSourceFile(FILE, code, languageVersion, true);
      const text = LIBS.get(name);
      if (text === undefined) return undefined;
      let file = parsed.get(name);
      if (!file) {
        file = ts.createSourceFile(name, text, languageVersion, true);
        parsed.set(name, file);
      }
      return file;
    },
    getDefaultLibFileName: () => "lib.es2023.d.ts",
    getDefaultLibLocation: () => "",
    writeFile: () => undefined,
    getCurrentDirectory: () => "",
    getDirectories: () => [],
    fileExists: (name) => name === FILE || LIBS.has(name),
    readFile: (name) => (name === FILE ? code : LIBS.get(name)),
    getCanonicalFileName: (name) => name,
    useCaseSensitiveFileNames: () => true,
    getNewLine: () => "\n",
  };
}

function check(code: string): CheckReply["diagnostics"] {
  const program = ts.createProgram({ rootNames: [FILE], options: OPTIONS, host: host(code), oldProgram: previous });
  previous = program;
  const file = program.getSourceFile(FILE);
  // A program that does not parse is the runner's to report (as a SyntaxError, like JavaScript's): the types of
  // code that cannot run say little.
  if (program.getSyntacticDiagnostics(file).length) return [];
  const all = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...program.getSemanticDiagnostics(file),
  ];
  return all
    .filter((d) => d.category === ts.DiagnosticCategory.Error)
    .map((d) => {
      const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : null;
      return { line, code: d.code, message: ts.flattenDiagnosticMessageText(d.messageText, "\n  ") };
    });
}

self.onmessage = (event: MessageEvent<CheckRequest>) => {
  const { id, code } = event.data;
  const started = performance.now();
  let reply: CheckReply;
  try {
    reply = { id, diagnostics: check(code), ms: Math.round(performance.now() - started) };
  } catch (err) {
    // A checker crash must not stop the program from running: say so and let it run.
    reply = { id, diagnostics: [], ms: 0, failed: String(err) };
  }
  self.postMessage(reply);
};

self.postMessage({ id: 0, diagnostics: [], ms: 0 } satisfies CheckReply);
