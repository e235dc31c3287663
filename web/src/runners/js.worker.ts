/// <reference lib="webworker" />
// Runs JavaScript (and TypeScript, types stripped by sucrase) in QuickJS compiled to WebAssembly.
// QuickJS gets an interrupt handler (deadline + the page's stop flag) and a small stack; its memory limit
// does not stop gradual growth, so the page terminates this worker as the hard backstop.
import releaseSync from "@jitl/quickjs-wasmfile-release-sync";
import wasmLocation from "@jitl/quickjs-wasmfile-release-sync/wasm?url";
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSWASMModule,
} from "quickjs-emscripten-core";
import { OutputPump, type FromWorker, type RunMessage, type ToWorker } from "./protocol";

declare const self: DedicatedWorkerGlobalScope;

const post = (m: FromWorker): void => self.postMessage(m);

const STACK_BYTES = 256 * 1024;
const MEMORY_BYTES = 256 * 1024 * 1024;

// console, readline() and prompt() inside the guest; formatting happens in the guest so that objects print
// the way people expect from a browser console or Node.
const PRELUDE = `
(() => {
  const write = globalThis.__ccl_write;
  const readLine = globalThis.__ccl_readline;
  delete globalThis.__ccl_write;
  delete globalThis.__ccl_readline;
  const show = (value, depth, seen) => {
    if (typeof value === "string") return depth === 0 ? value : JSON.stringify(value);
    if (typeof value === "function") return "[Function: " + (value.name || "anonymous") + "]";
    if (typeof value === "bigint") return value + "n";
    if (typeof value === "symbol") return value.toString();
    if (value === null || typeof value !== "object") return String(value);
    if (value instanceof Error) return value.stack ? value.name + ": " + value.message + "\\n" + value.stack : String(value);
    if (seen.has(value)) return "[Circular]";
    if (depth > 3) return Array.isArray(value) ? "[Array]" : "[Object]";
    seen.add(value);
    let out;
    if (Array.isArray(value)) {
      out = "[ " + value.map((v) => show(v, depth + 1, seen)).join(", ") + " ]";
      if (value.length === 0) out = "[]";
    } else if (value instanceof Map) {
      out = "Map(" + value.size + ") { " + [...value].map(([k, v]) => show(k, depth + 1, seen) + " => " + show(v, depth + 1, seen)).join(", ") + " }";
    } else if (value instanceof Set) {
      out = "Set(" + value.size + ") { " + [...value].map((v) => show(v, depth + 1, seen)).join(", ") + " }";
    } else {
      const keys = Object.keys(value);
      out = keys.length === 0 ? "{}" : "{ " + keys.map((k) => (/^[A-Za-z_$][\\w$]*$/.test(k) ? k : JSON.stringify(k)) + ": " + show(value[k], depth + 1, seen)).join(", ") + " }";
    }
    seen.delete(value);
    return out;
  };
  const line = (args) => args.map((a) => show(a, 0, new Set())).join(" ") + "\\n";
  const out = (...args) => write(1, line(args));
  const err = (...args) => write(2, line(args));
  globalThis.console = { log: out, info: out, debug: out, trace: out, warn: err, error: err };
  // Reports a rejection of the wrapper that runs programs using top-level await.
  Object.defineProperty(globalThis, "__ccl_uncaught", {
    value: (e) => {
      err(e instanceof Error ? e.name + ": " + e.message + "\\n" + (e.stack || "").trimEnd() : "Uncaught " + show(e, 1, new Set()));
      globalThis.__ccl_failed = true;
    },
  });
  globalThis.readline = () => readLine();
  globalThis.prompt = (message) => { if (message !== undefined) write(1, String(message)); return readLine(); };
})();
`;

let module: Promise<QuickJSWASMModule> | null = null;

function loadQuickJS(): Promise<QuickJSWASMModule> {
  module ??= newQuickJSWASMModuleFromVariant(newVariant(releaseSync, { wasmLocation }));
  return module;
}

function describeError(ctx: QuickJSContext, handle: QuickJSHandle): string {
  const dumped: unknown = ctx.dump(handle);
  if (dumped && typeof dumped === "object") {
    const e = dumped as { name?: unknown; message?: unknown; stack?: unknown };
    const head = `${String(e.name ?? "Error")}: ${String(e.message ?? "")}`;
    const stack = typeof e.stack === "string" ? e.stack.trimEnd() : "";
    return stack ? `${head}\n${stack}\n` : `${head}\n`;
  }
  return `Uncaught ${String(dumped)}\n`;
}

function isSyntaxError(ctx: QuickJSContext, handle: QuickJSHandle): boolean {
  const dumped: unknown = ctx.dump(handle);
  return typeof dumped === "object" && dumped !== null && (dumped as { name?: unknown }).name === "SyntaxError";
}

async function stripTypes(code: string): Promise<{ code: string } | { error: string }> {
  const { transform } = await import("sucrase");
  try {
    return { code: transform(code, { transforms: ["typescript"], disableESTransforms: true }).code };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

async function run(message: RunMessage): Promise<void> {
  let quickjs: QuickJSWASMModule;
  try {
    quickjs = await loadQuickJS();
    post({ type: "ready" });
  } catch (err) {
    module = null;
    post({ type: "failed", message: `The JavaScript runner could not be loaded: ${String(err)}` });
    return;
  }
  let source = message.code;
  let filename = "main.js";
  if (message.language === "typescript") {
    filename = "main.ts";
    const stripped = await stripTypes(source);
    if ("error" in stripped) {
      const text = `${filename}: SyntaxError: ${stripped.error}\n`;
      post({ type: "started" });
      post({ type: "output", stream: "stderr", text });
      post({ type: "done", exitCode: 1, interrupted: false, truncated: false, compileOutput: text });
      return;
    }
    source = stripped.code;
  }

  const flag = message.interrupt ? new Int32Array(message.interrupt) : null;
  const stdinLines = message.stdin.split("\n");
  if (stdinLines.at(-1) === "") stdinLines.pop();
  let interrupted = false;
  const runtime = quickjs.newRuntime();
  runtime.setMaxStackSize(STACK_BYTES);
  runtime.setMemoryLimit(MEMORY_BYTES);
  const pump = new OutputPump(post, message.maxOutputBytes, () => {
    interrupted = true;
  });
  post({ type: "started" });
  const deadline = Date.now() + message.limitMs;
  runtime.setInterruptHandler(() => {
    if (interrupted || (flag && Atomics.load(flag, 0) !== 0) || Date.now() > deadline) {
      interrupted = true;
      return true;
    }
    return false;
  });
  const ctx = runtime.newContext();
  let exitCode: number | null = 0;
  try {
    const writeFn = ctx.newFunction("__ccl_write", (fd, text) => {
      pump.write(ctx.getNumber(fd) === 2 ? "stderr" : "stdout", ctx.getString(text));
    });
    ctx.setProp(ctx.global, "__ccl_write", writeFn);
    writeFn.dispose();
    const readFn = ctx.newFunction("__ccl_readline", () => {
      const next = stdinLines.shift();
      return next === undefined ? ctx.null : ctx.newString(next);
    });
    ctx.setProp(ctx.global, "__ccl_readline", readFn);
    readFn.dispose();
    ctx.unwrapResult(ctx.evalCode(PRELUDE, "prelude.js")).dispose();

    let result = ctx.evalCode(source, filename);
    if (result.error && !interrupted && /\bawait\b/.test(source) && isSyntaxError(ctx, result.error)) {
      // Top-level await, as in a module or a console: run the program as the body of an async function
      // (same line numbers). If that does not parse either, the first error is the one to show.
      const wrapped = ctx.evalCode(`(async () => {${source}\n})().catch(__ccl_uncaught);`, filename);
      if (wrapped.error && isSyntaxError(ctx, wrapped.error)) {
        wrapped.error.dispose();
      } else {
        result.error.dispose();
        result = wrapped;
      }
    }
    if (result.error) {
      exitCode = interrupted ? null : 1;
      pump.write("stderr", interrupted ? "Interrupted\n" : describeError(ctx, result.error));
      result.error.dispose();
    } else {
      result.value.dispose();
      // Run promise jobs (async functions, then-callbacks) until none are left or the program is stopped.
      for (;;) {
        const jobs = runtime.executePendingJobs();
        if (jobs.error) {
          exitCode = interrupted ? null : 1;
          pump.write("stderr", interrupted ? "Interrupted\n" : describeError(ctx, jobs.error));
          jobs.error.dispose();
          break;
        }
        if (jobs.value === 0) break;
      }
      const failed = ctx.getProp(ctx.global, "__ccl_failed");
      if (ctx.typeof(failed) === "boolean" && ctx.dump(failed) === true && exitCode === 0) exitCode = 1;
      failed.dispose();
    }
  } catch (err) {
    exitCode = interrupted ? null : 1;
    pump.write("stderr", `${String(err)}\n`);
  } finally {
    try {
      ctx.dispose();
      runtime.dispose();
    } catch {
      // A leaked handle after an interrupt: the next run gets a fresh runtime either way.
    }
  }
  pump.flush();
  post({ type: "done", exitCode, interrupted, truncated: pump.truncated, compileOutput: "" });
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "load") {
    loadQuickJS().then(
      () => post({ type: "ready" }),
      (err: unknown) => post({ type: "failed", message: String(err) }),
    );
  } else if (message.type === "run") {
    void run(message);
  }
};
