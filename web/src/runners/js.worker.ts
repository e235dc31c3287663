/// <reference lib="webworker" />
// Runs JavaScript (and TypeScript, types stripped by sucrase) in QuickJS compiled to WebAssembly.
// QuickJS gets an interrupt handler (deadline + the page's stop flag) and a small stack; its memory limit
// does not stop gradual growth, so the page terminates this worker as the hard backstop.
// QuickJS has no event loop of its own: this worker is it. It keeps the program's timers, runs promise jobs
// after every task, and ends the run when nothing is left to do, as Node does.
import releaseSync from "@jitl/quickjs-wasmfile-release-sync";
import wasmLocation from "@jitl/quickjs-wasmfile-release-sync/wasm?url";
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from "quickjs-emscripten-core";
import { OutputPump, type FromWorker, type RunMessage, type ToWorker } from "./protocol";

declare const self: DedicatedWorkerGlobalScope;

const post = (m: FromWorker): void => self.postMessage(m);

const STACK_BYTES = 256 * 1024;
const MEMORY_BYTES = 256 * 1024 * 1024;
/** Longest sleep between two looks at the stop flag while the program waits for a timer. */
const POLL_MS = 20;

// console, readline(), prompt(), timers, queueMicrotask and the promise tracker inside the guest. Formatting
// happens in the guest so that objects print the way people expect from a browser console or Node.
const PRELUDE = `
(() => {
  const write = globalThis.__ccl_write;
  const readLine = globalThis.__ccl_readline;
  const schedule = globalThis.__ccl_schedule;
  const unschedule = globalThis.__ccl_unschedule;
  delete globalThis.__ccl_write;
  delete globalThis.__ccl_readline;
  delete globalThis.__ccl_schedule;
  delete globalThis.__ccl_unschedule;
  const hidden = (name, value) => Object.defineProperty(globalThis, name, { value });
  const show = (value, depth, seen) => {
    if (typeof value === "string") return depth === 0 ? value : JSON.stringify(value);
    if (typeof value === "function") return "[Function: " + (value.name || "anonymous") + "]";
    if (typeof value === "bigint") return value + "n";
    if (typeof value === "symbol") return value.toString();
    if (value === null || typeof value !== "object") return String(value);
    if (value instanceof Error) return describe(value);
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
  globalThis.readline = () => readLine();
  globalThis.prompt = (message) => { if (message !== undefined) write(1, String(message)); return readLine(); };

  // Stack traces show the program's frames: not the prelude's, nor the calls the promise tracker added.
  let internalCalls = [];
  hidden("__ccl_hide", (frames) => { internalCalls = frames; });
  const ours = (frame) => {
    if (frame.includes("(prelude.js:")) return true;
    const at = /\\((?:main\\.[jt]s):(\\d+):(\\d+)\\)$/.exec(frame);
    return at !== null && internalCalls.some(([line, from, to]) => line === +at[1] && from <= +at[2] && +at[2] < to);
  };
  const stackOf = (e) => {
    const stack = typeof e.stack === "string" ? e.stack.trimEnd() : "";
    return stack.split("\\n").filter((frame) => frame && !ours(frame)).join("\\n");
  };
  const describe = (e) => {
    if (!(e instanceof Error)) return show(e, 1, new Set());
    const stack = stackOf(e);
    return e.name + ": " + e.message + (stack ? "\\n" + stack : "");
  };
  const thrown = (e) => (e instanceof Error ? describe(e) : "Uncaught " + describe(e));
  hidden("__ccl_describe", thrown);

  // What ends the program with exit status 1 once the current task and its promise jobs are done.
  let fatal;
  const fail = (text) => { if (fatal === undefined) fatal = text; };
  // A rejection of the wrapper that runs programs using top-level await, or an error in queueMicrotask.
  hidden("__ccl_uncaught", (e) => fail(thrown(e)));

  // Unhandled rejections. Tracked promises (made by async functions, new Promise, Promise.* and then) get an
  // own "constructor" getter: await and then read it, so reading it means someone handles the promise. The
  // getter returns the real constructor, so await keeps its fast path and the microtask order stays the same.
  const NativePromise = Promise;
  const nativeThen = NativePromise.prototype.then;
  const tracked = new WeakSet();
  const handled = new WeakSet();
  let rejected = [];
  let internal = false;
  const track = (promise) => {
    if (!(promise instanceof NativePromise) || tracked.has(promise)) return promise;
    tracked.add(promise);
    Object.defineProperty(promise, "constructor", {
      configurable: true,
      get() {
        if (!internal) handled.add(promise);
        return Object.getPrototypeOf(promise).constructor;
      },
    });
    internal = true;
    try {
      nativeThen.call(promise, undefined, (reason) => { rejected.push([promise, reason]); });
    } finally {
      internal = false;
    }
    return promise;
  };
  Object.defineProperty(NativePromise.prototype, "then", {
    configurable: true,
    writable: true,
    value: function then(onFulfilled, onRejected) {
      handled.add(this);
      return track(nativeThen.call(this, onFulfilled, onRejected));
    },
  });
  for (const name of ["all", "allSettled", "any", "race", "reject", "resolve", "withResolvers"]) {
    const original = NativePromise[name];
    if (typeof original !== "function") continue;
    const wrapped = {
      [name](...args) {
        // Promise.resolve(p) hands p back: passing it through is not handling it.
        internal = name === "resolve";
        let result;
        try {
          result = original.apply(this, args);
        } finally {
          internal = false;
        }
        track(name === "withResolvers" ? result.promise : result);
        return result;
      },
    }[name];
    Object.defineProperty(NativePromise, name, { configurable: true, writable: true, value: wrapped });
  }
  hidden("__ccl_async", track);
  hidden("__ccl_Promise", function Promise(executor) { return track(new NativePromise(executor)); });
  hidden("__ccl_fatal", () => {
    const settled = rejected;
    rejected = [];
    for (const [promise, reason] of settled) {
      if (!handled.has(promise)) fail("Uncaught (in promise) " + describe(reason));
    }
    return fatal;
  });

  // Timers: the callbacks stay here, the host keeps the schedule and calls __ccl_fire(id) when one is due.
  const timers = new Map();
  let lastTimer = 0;
  const addTimer = (repeat, callback, delay, args) => {
    if (typeof callback !== "function") throw new TypeError("The callback must be a function. Received " + show(callback, 1, new Set()));
    const id = ++lastTimer;
    const ms = Number(delay);
    timers.set(id, { callback, args, repeat });
    schedule(id, ms > 0 && ms <= 2147483647 ? ms : 0, repeat);
    return id;
  };
  const clear = (id) => { if (timers.delete(Number(id))) unschedule(Number(id)); };
  globalThis.setTimeout = function setTimeout(callback, delay, ...args) { return addTimer(false, callback, delay, args); };
  globalThis.setInterval = function setInterval(callback, delay, ...args) { return addTimer(true, callback, delay, args); };
  globalThis.clearTimeout = function clearTimeout(id) { clear(id); };
  globalThis.clearInterval = function clearInterval(id) { clear(id); };
  hidden("__ccl_fire", (id) => {
    const timer = timers.get(id);
    if (!timer) return;
    if (!timer.repeat) timers.delete(id);
    timer.callback(...timer.args);
  });
  const resolved = NativePromise.resolve();
  globalThis.queueMicrotask = function queueMicrotask(callback) {
    if (typeof callback !== "function") throw new TypeError("The callback must be a function. Received " + show(callback, 1, new Set()));
    nativeThen.call(resolved, () => {
      try { callback(); } catch (e) { globalThis.__ccl_uncaught(e); }
    });
  };
})();
`;

let module: Promise<QuickJSWASMModule> | null = null;

function loadQuickJS(): Promise<QuickJSWASMModule> {
  module ??= newQuickJSWASMModuleFromVariant(newVariant(releaseSync, { wasmLocation }));
  return module;
}

/** What the program threw, as the guest formats it (its own frames only), else as QuickJS dumps it. */
function describeError(ctx: QuickJSContext, describe: QuickJSHandle, handle: QuickJSHandle): string {
  const described = ctx.callFunction(describe, ctx.undefined, handle);
  if (!described.error) {
    const text: unknown = ctx.dump(described.value);
    described.value.dispose();
    if (typeof text === "string") return `${text}\n`;
  } else {
    described.error.dispose();
  }
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

interface Timer {
  due: number;
  /** Milliseconds between runs of an interval; null for a timeout. */
  every: number | null;
  /** Timers due at the same moment run in the order they were set. */
  order: number;
}

/** The program's timers as the host sees them: when each is due, and which comes next. */
class TimerQueue {
  private readonly timers = new Map<number, Timer>();
  private order = 0;

  set(id: number, delay: number, repeat: boolean): void {
    // Like Node, an interval waits at least 1 ms, so `setInterval(f, 0)` cannot starve everything else.
    this.timers.set(id, { due: performance.now() + delay, every: repeat ? Math.max(delay, 1) : null, order: this.order++ });
  }

  delete(id: number): void {
    this.timers.delete(id);
  }

  next(): [number, Timer] | null {
    let best: [number, Timer] | null = null;
    for (const entry of this.timers) {
      const [, t] = entry;
      if (!best || t.due < best[1].due || (t.due === best[1].due && t.order < best[1].order)) best = entry;
    }
    return best;
  }

  /** The timer ``id`` is about to run: a timeout is done, an interval is due again. */
  fired(id: number, timer: Timer): void {
    if (timer.every === null) this.timers.delete(id);
    else this.set(id, timer.every, true);
  }
}

type Step = { kind: "ok" } | { kind: "error"; text: string } | { kind: "interrupted" };

async function run(message: RunMessage): Promise<void> {
  let quickjs: QuickJSWASMModule;
  let trackPromises: (source: string) => { code: string; hidden: Array<[number, number, number]> };
  try {
    quickjs = await loadQuickJS();
    ({ trackPromises } = await import("./promises"));
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
      post({ type: "output", chunks: [["stderr", text]] });
      post({ type: "done", exitCode: 1, interrupted: false, truncated: false, compileOutput: text });
      return;
    }
    source = stripped.code;
  }
  const { code: program, hidden } = trackPromises(source);

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
  let deadline = Infinity; // set when the program itself starts, after the prelude
  let deadlineReached = false;
  const shouldStop = (): boolean => {
    if (interrupted) return true;
    if (flag && Atomics.load(flag, 0) !== 0) interrupted = true;
    else if (Date.now() > deadline) interrupted = deadlineReached = true;
    return interrupted;
  };
  runtime.setInterruptHandler(shouldStop);
  const ctx = runtime.newContext();
  const timers = new TimerQueue();
  let exitCode: number | null = 0;
  const held: QuickJSHandle[] = [];
  try {
    const host: Array<[string, (...args: QuickJSHandle[]) => QuickJSHandle | undefined]> = [
      [
        "__ccl_write",
        (fd, text) => {
          if (fd && text) pump.write(ctx.getNumber(fd) === 2 ? "stderr" : "stdout", ctx.getString(text));
          return undefined;
        },
      ],
      [
        "__ccl_readline",
        () => {
          const next = stdinLines.shift();
          return next === undefined ? ctx.null : ctx.newString(next);
        },
      ],
      [
        "__ccl_schedule",
        (id, delay, repeat) => {
          if (id && delay) timers.set(ctx.getNumber(id), ctx.getNumber(delay), repeat !== undefined && ctx.dump(repeat) === true);
          return undefined;
        },
      ],
      [
        "__ccl_unschedule",
        (id) => {
          if (id) timers.delete(ctx.getNumber(id));
          return undefined;
        },
      ],
    ];
    for (const [name, fn] of host) {
      const handle = ctx.newFunction(name, fn);
      ctx.setProp(ctx.global, name, handle);
      handle.dispose();
    }
    ctx.unwrapResult(ctx.evalCode(PRELUDE, "prelude.js")).dispose();
    ctx.unwrapResult(ctx.evalCode(`__ccl_hide(${JSON.stringify(hidden)})`, "prelude.js")).dispose();
    const [fire, fatal, describe] = ["__ccl_fire", "__ccl_fatal", "__ccl_describe"].map((name) => {
      const handle = ctx.getProp(ctx.global, name);
      held.push(handle);
      return handle;
    }) as [QuickJSHandle, QuickJSHandle, QuickJSHandle];

    // One task (the program, or one timer callback), then every promise job it queued, then what went wrong.
    // Once interrupted, QuickJS fails every call (and turns a stopped job into a rejection): nothing more runs.
    const settle = (result: { error?: QuickJSHandle; value?: QuickJSHandle }): Step => {
      if (result.error) {
        const text = interrupted ? "" : describeError(ctx, describe, result.error);
        result.error.dispose();
        return interrupted ? { kind: "interrupted" } : { kind: "error", text };
      }
      result.value?.dispose();
      if (interrupted) return { kind: "interrupted" };
      const jobs = runtime.executePendingJobs();
      if (jobs.error) return settle({ error: jobs.error });
      if (interrupted) return { kind: "interrupted" };
      const check = ctx.callFunction(fatal, ctx.undefined);
      if (check.error) return settle(check);
      const text: unknown = ctx.dump(check.value);
      check.value.dispose();
      return typeof text === "string" ? { kind: "error", text: `${text}\n` } : { kind: "ok" };
    };

    deadline = Date.now() + message.limitMs;
    let result = ctx.evalCode(program, filename);
    if (result.error && !interrupted && /\bawait\b/.test(source) && isSyntaxError(ctx, result.error)) {
      // Top-level await, as in a module or a console: run the program as the body of an async function
      // (same line numbers). If that does not parse either, the first error is the one to show.
      const wrapped = ctx.evalCode(`(async () => {${program}\n})().catch(__ccl_uncaught);`, filename);
      if (wrapped.error && isSyntaxError(ctx, wrapped.error)) {
        wrapped.error.dispose();
      } else {
        result.error.dispose();
        result = wrapped;
      }
    }
    let step = settle(result);
    while (step.kind === "ok") {
      const next = timers.next();
      if (!next) break; // nothing left to wait for: the program is done
      const [id, timer] = next;
      pump.flush(); // what the program printed so far shows while it waits
      await waitUntil(timer.due, shouldStop);
      if (interrupted) {
        step = { kind: "interrupted" };
        break;
      }
      timers.fired(id, timer);
      const arg = ctx.newNumber(id);
      step = settle(ctx.callFunction(fire, ctx.undefined, arg));
      arg.dispose();
    }
    if (step.kind === "error") {
      exitCode = 1;
      pump.write("stderr", step.text);
    } else if (step.kind === "interrupted") {
      exitCode = null;
      pump.write("stderr", "Interrupted\n");
    }
  } catch (err) {
    exitCode = interrupted ? null : 1;
    pump.write("stderr", `${String(err)}\n`);
  } finally {
    for (const handle of held) handle.dispose();
    dispose(ctx, runtime);
  }
  pump.flush();
  post({ type: "done", exitCode, interrupted, truncated: pump.truncated, compileOutput: "", deadlineReached });
}

/** Wait until ``due`` (performance.now() time), looking at the stop flag and the deadline every few ms. */
async function waitUntil(due: number, shouldStop: () => boolean): Promise<void> {
  for (;;) {
    if (shouldStop()) return;
    const left = due - performance.now();
    if (left <= 0) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, POLL_MS)));
  }
}

function dispose(ctx: QuickJSContext, runtime: QuickJSRuntime): void {
  try {
    ctx.dispose();
    runtime.dispose();
  } catch (err) {
    // Every handle this worker took is released above; if QuickJS still finds one, the next run gets a fresh
    // runtime either way, but say so where developers look.
    console.error("QuickJS did not release everything:", err);
  }
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
