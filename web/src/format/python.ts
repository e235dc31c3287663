// Python through Ruff's formatter (compiled to WebAssembly), served from our own assets folder.
import wasmUrl from "@wasm-fmt/ruff_fmt/ruff_fmt_bg.wasm?url";
import * as glue from "@wasm-fmt/ruff_fmt/ruff_fmt_bg.js";
import { FormatError } from "./errors";

// Everything else the glue exports is what the wasm module imports, as the package's own loader passes it.
const { __wbg_set_wasm: setWasm, format, format_range: _range, ...wasmImports } = glue;

export async function load(): Promise<(code: string) => string> {
  const { instance } = await WebAssembly.instantiateStreaming(fetch(wasmUrl), { "./ruff_fmt_bg.js": wasmImports });
  const exports = instance.exports as Record<string, unknown> & { __wbindgen_export4: (p: number, l: number, a: number) => void };
  const free = exports.__wbindgen_export4;
  // The package's glue frees its result buffer even when formatting failed, passing a null pointer; the
  // allocator takes that as a real free and the next call reads corrupt memory. Skip the null frees.
  setWasm({ ...exports, __wbindgen_export4: (ptr: number, len: number, align: number) => (ptr ? free(ptr, len, align) : undefined) });
  return (code) => {
    try {
      return format(code, "main.py", { indent_width: 4, line_width: 100 });
    } catch (err) {
      throw new FormatError(pythonMessage(String(err instanceof Error ? err.message : err), code));
    }
  };
}

/** Ruff reports byte ranges; people want a line number. */
function pythonMessage(message: string, code: string): string {
  const range = /at byte range (\d+)\.\.\d+/.exec(message);
  const first = message.replace(/\s*at byte range \d+\.\.\d+/, "").split("\n")[0] ?? message;
  if (!range) return first;
  const bytes = new TextEncoder().encode(code).subarray(0, Number(range[1]));
  const line = new TextDecoder().decode(bytes).split("\n").length;
  return `line ${line}: ${first}`;
}
