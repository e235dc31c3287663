// The package types its entry points, not the wasm-bindgen glue that python.ts loads the module with.
declare module "@wasm-fmt/ruff_fmt/ruff_fmt_bg.js" {
  import type { Config } from "@wasm-fmt/ruff_fmt";
  export function __wbg_set_wasm(exports: object): void;
  export function format(input: string, path?: string | null, config?: Config | null): string;
  export function format_range(input: string, range: unknown, path?: string | null, config?: Config | null): unknown;
}
