// Marks where a program's promises are made, so the JavaScript runner can report a rejection nobody handles.
// QuickJS can track rejections, but quickjs-emscripten does not expose that hook, and the promise of an async
// function is invisible from JavaScript: each async function is therefore rewritten to hand its promise to the
// runner's tracker, and `new Promise(...)` to build a tracked one. The rewrite keeps every line where it was
// (stack traces keep their line numbers) and keeps the same promise objects, so awaits take the same number of
// microtask turns as before (output order stays what Node and browsers print).
import { parse, type Scope, type Token } from "sucrase/dist/esm/parser/index.js";
import { ContextualKeyword } from "sucrase/dist/esm/parser/tokenizer/keywords.js";
import { TokenType as tt } from "sucrase/dist/esm/parser/tokenizer/types.js";

/** Global the rewritten async functions pass their promise to (defined by the runner's prelude). */
export const TRACK_ASYNC = "__ccl_async";
/** Global that `new Promise(...)` is rewritten to: a native promise, tracked. */
export const TRACKED_PROMISE = "__ccl_Promise";

interface Edit {
  at: number;
  end: number;
  text: string;
  /** Order among edits at the same place: closings (inner first), then openings (outer first), then replacements. */
  rank: [number, number];
  /** The text calls the tracked function: its stack frame is the runner's, not the program's. */
  call?: boolean;
}

/** A place in the rewritten code (line, and 1-based columns from..to exclusive) whose stack frames to leave out. */
export type HiddenFrame = [line: number, from: number, to: number];

export interface Tracked {
  code: string;
  hidden: HiddenFrame[];
}

function isAsync(token: Token | undefined): boolean {
  return token !== undefined && (token.type === tt._async || (token.type === tt.name && token.contextualKeyword === ContextualKeyword._async));
}

function matchBrackets(tokens: readonly Token[]): Int32Array {
  const match = new Int32Array(tokens.length).fill(-1);
  const open: number[] = [];
  tokens.forEach((token, i) => {
    const t = token.type;
    if (t === tt.parenL || t === tt.bracketL || t === tt.braceL || t === tt.dollarBraceL) open.push(i);
    else if (t === tt.parenR || t === tt.bracketR || t === tt.braceR) {
      const j = open.pop();
      if (j !== undefined) {
        match[i] = j;
        match[j] = i;
      }
    }
  });
  return match;
}

/** The async keyword and body of the async (non-generator) function whose scope this is, if it is one. */
function asyncFunction(
  source: string,
  tokens: readonly Token[],
  match: Int32Array,
  scope: Scope,
): { keyword: number; body: number; end: number; name: string | null } | null {
  const s = scope.startTokenIndex;
  const end = scope.endTokenIndex;
  const first = tokens[s];
  // The whole program is a function scope too (it alone reaches the end-of-file token).
  if (!scope.isFunctionScope || !first || end <= s || end >= tokens.length) return null;
  if (first.type === tt.parenL) {
    const close = match[s] ?? -1;
    if (close < 0) return null;
    if (tokens[close + 1]?.type === tt.arrow) {
      // An arrow with parenthesised parameters: async when `async` comes right before them.
      return isAsync(tokens[s - 1]) && close + 2 < end ? { keyword: s - 1, body: close + 2, end, name: null } : null;
    }
    // A function or method: `async function name(`, `async name(`, `async [key](`, `async #name(`.
    const body = close + 1;
    if (tokens[body]?.type !== tt.braceL || match[body] !== end - 1) return null;
    let k = s - 1;
    let name: number | null = null;
    if (tokens[k]?.type === tt.bracketR) k = (match[k] ?? 0) - 1;
    else if (tokens[k] && tokens[k]?.type !== tt._function) {
      name = k;
      k -= 1;
      if (tokens[k]?.type === tt.hash) k -= 1;
    }
    if (tokens[k]?.type === tt.star) return null; // async generators hand out their promises through next()
    if (tokens[k]?.type === tt._function) k -= 1;
    return isAsync(tokens[k]) ? { keyword: k, body, end, name: name === null ? null : nameAt(source, tokens, name) } : null;
  }
  if (isAsync(first)) {
    // An async arrow with one bare parameter, `async x => ...` (the scope starts at `async`).
    if (tokens[s + 1]?.type !== tt.name || tokens[s + 2]?.type !== tt.arrow || s + 3 >= end) return null;
    return { keyword: s, body: s + 3, end, name: null };
  }
  return null;
}

/** The name a function defined at ``index`` (its name or key token) has in stack traces, if it is a plain one. */
function nameAt(source: string, tokens: readonly Token[], index: number): string | null {
  const token = tokens[index];
  if (!token) return null;
  const word = source.slice(token.start, token.end);
  if (token.type === tt.hash) return null;
  if (tokens[index - 1]?.type === tt.hash) return `#${word}`;
  return /^[A-Za-z_$][\w$]*$/.test(word) ? word : null;
}

/** An arrow's name comes from where it is put: `const name = async () => ...`, `name: async () => ...`. */
function arrowName(source: string, tokens: readonly Token[], keyword: number): string | null {
  const before = tokens[keyword - 1]?.type;
  return before === tt.eq || before === tt.colon ? nameAt(source, tokens, keyword - 2) : null;
}

/** ``source`` with its promises tracked, or ``source`` itself when it does not parse (QuickJS then says why). */
export function trackPromises(source: string): Tracked {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source, false, false, false);
  } catch {
    return { code: source, hidden: [] };
  }
  const { tokens, scopes } = parsed;
  const match = matchBrackets(tokens);
  const edits: Edit[] = [];
  for (const scope of scopes) {
    const fn = asyncFunction(source, tokens, match, scope);
    if (!fn) continue;
    const keyword = tokens[fn.keyword];
    const body = tokens[fn.body];
    const last = tokens[fn.end - 1];
    if (!keyword || !body || !last) continue;
    // `async function f(a) { B }` -> `function f(a) {return __ccl_async({"f": async () => { B }}["f"]())}`: the
    // arrow shares `this`, `arguments` and `super` with the function around it, takes the function's name (the
    // object literal names it), and the caller gets the same promise.
    const block = body.type === tt.braceL;
    const name = fn.name ?? arrowName(source, tokens, fn.keyword);
    const key = name === null ? null : JSON.stringify(name);
    edits.push({ at: keyword.start, end: keyword.end, text: "", rank: [2, 0] });
    edits.push({
      at: body.start,
      end: body.start,
      text: `${block ? "{return " : ""}${TRACK_ASYNC}(${key === null ? "(" : `{${key}: `}async () => `,
      rank: [1, scope.startTokenIndex],
    });
    edits.push({
      at: last.end,
      end: last.end,
      text: `${key === null ? ")" : `}[${key}]`}())${block ? "}" : ""}`,
      rank: [0, -scope.startTokenIndex],
      call: true,
    });
  }
  tokens.forEach((token, i) => {
    const next = tokens[i + 1];
    if (token.type === tt._new && next?.type === tt.name && source.slice(next.start, next.end) === "Promise") {
      edits.push({ at: next.start, end: next.end, text: TRACKED_PROMISE, rank: [2, 0] });
    }
  });
  if (edits.length === 0) return { code: source, hidden: [] };
  edits.sort((a, b) => a.at - b.at || a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1]);
  let out = "";
  let pos = 0;
  const hidden: HiddenFrame[] = [];
  for (const edit of edits) {
    if (edit.at < pos) continue; // never happens for code sucrase parsed; keep the original text if it did
    out += source.slice(pos, edit.at);
    if (edit.call) {
      const lineStart = out.lastIndexOf("\n") + 1;
      const line = (out.match(/\n/g)?.length ?? 0) + 1;
      const column = out.length - lineStart + 1;
      hidden.push([line, column, column + edit.text.length]);
    }
    out += edit.text;
    pos = edit.end;
  }
  return { code: out + source.slice(pos), hidden };
}
