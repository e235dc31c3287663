/// <reference lib="webworker" />
// Runs Python in Pyodide, loaded from our own server (standard library only; nothing from elsewhere).
// Pyodide only loads in a module worker. Stop works through Pyodide's interrupt buffer (SharedArrayBuffer);
// the page terminates the worker when that does not stop the program in time.
import type { PyodideInterface } from "pyodide";
import type { PyCallable } from "pyodide/ffi";
import { OutputPump, type FromWorker, type RunMessage, type ToWorker } from "./protocol";

declare const self: DedicatedWorkerGlobalScope;

const post = (m: FromWorker): void => self.postMessage(m);

// Runs the program as __main__ in a fresh namespace each time, and turns the ways a program ends into an exit
// status the way CPython would. Top-level await is allowed (as in `python -m asyncio`); the program's coroutine
// and asyncio.run() block through Pyodide's run_sync, which needs the call to come in through callPromising
// (JS promise integration). The source is put in linecache under its file name so tracebacks show its lines,
// and the runner's own frames are left out of them.
const PRELUDE = `
import ast, inspect, linecache, sys, traceback

def _ccl_frame_is_users(frame):
    name = frame.filename
    return name != "<exec>" and "/pyodide/" not in name and "/_pyodide/" not in name

def _ccl_print_exception(exc):
    report = traceback.TracebackException.from_exception(exc)
    for part in (report, report.__cause__, report.__context__):
        if part is not None:
            part.stack = traceback.StackSummary.from_list([f for f in part.stack if _ccl_frame_is_users(f)])
    print("".join(report.format()), end="", file=sys.stderr)

def _ccl_cancel_tasks():
    # Tasks the program started and left running would print into the next run; asyncio.run() cancels them too.
    try:
        import asyncio
        loop = asyncio.get_event_loop()
        for task in asyncio.all_tasks(loop):
            task.cancel()
    except Exception:
        pass

def _ccl_run(source, can_block):
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    linecache.cache["main.py"] = (len(source), None, source.splitlines(True), "main.py")
    try:
        code = compile(source, "main.py", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        result = eval(code, namespace)
        if code.co_flags & inspect.CO_COROUTINE:
            if not can_block:
                result.close()
                raise RuntimeError("top-level await needs a browser with WebAssembly JavaScript Promise Integration")
            from pyodide.ffi import run_sync
            run_sync(result)
        return 0
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("KeyboardInterrupt", file=sys.stderr)
        return -2
    except BaseException as exc:
        _ccl_print_exception(exc)
        return 1
    finally:
        _ccl_cancel_tasks()
        sys.stdout.flush()
        sys.stderr.flush()
`;

/** Pyodide can block Python on a promise (asyncio.run, time.sleep, top-level await) only with JSPI. */
const CAN_BLOCK = typeof (WebAssembly as { Suspending?: unknown }).Suspending === "function";

let pyodide: Promise<PyodideInterface> | null = null;

function load(): Promise<PyodideInterface> {
  if (pyodide) return pyodide;
  post({ type: "loading", what: "Python" });
  pyodide = (async () => {
    const url = `${__PYODIDE_BASE__}pyodide.mjs`;
    const mod = (await import(/* @vite-ignore */ url)) as typeof import("pyodide");
    const py = await mod.loadPyodide({ indexURL: __PYODIDE_BASE__, packages: [] });
    py.runPython(PRELUDE);
    post({ type: "ready" });
    return py;
  })();
  pyodide.catch(() => {
    pyodide = null;
  });
  return pyodide;
}

async function run(message: RunMessage): Promise<void> {
  let py: PyodideInterface;
  try {
    py = await load();
  } catch (err) {
    post({ type: "failed", message: `Python could not be loaded: ${String(err)}` });
    return;
  }
  const interrupt = message.interrupt ? new Uint8Array(message.interrupt) : null;
  const pump = new OutputPump(post, message.maxOutputBytes, () => {
    // Too much output: stop the program the same way Stop does.
    if (interrupt) Atomics.store(interrupt, 0, 2);
  });
  const stdoutDecoder = new TextDecoder();
  const stderrDecoder = new TextDecoder();
  py.setStdout({
    write: (buf: Uint8Array) => {
      pump.write("stdout", stdoutDecoder.decode(buf, { stream: true }));
      return buf.length;
    },
  });
  py.setStderr({
    write: (buf: Uint8Array) => {
      pump.write("stderr", stderrDecoder.decode(buf, { stream: true }));
      return buf.length;
    },
  });
  const stdin = new TextEncoder().encode(message.stdin);
  let offset = 0;
  py.setStdin({
    read: (buffer: Uint8Array) => {
      const n = Math.min(buffer.length, stdin.length - offset);
      buffer.set(stdin.subarray(offset, offset + n));
      offset += n;
      return n; // 0 = end of input: input() then raises EOFError, as with an empty pipe.
    },
  });
  if (interrupt) py.setInterruptBuffer(interrupt);

  const runner = py.globals.get("_ccl_run") as PyCallable;
  post({ type: "started" });
  let exitCode: number | null = 1;
  let interrupted = false;
  try {
    const rc = (CAN_BLOCK ? await runner.callPromising(message.code, true) : runner(message.code, false)) as number;
    if (rc === -2) {
      interrupted = true;
      exitCode = null;
    } else {
      exitCode = rc;
    }
  } catch (err) {
    // A KeyboardInterrupt that landed outside the user's code, or Pyodide itself failing.
    const text = String(err);
    interrupted = text.includes("KeyboardInterrupt");
    exitCode = interrupted ? null : 1;
    pump.write("stderr", interrupted ? "KeyboardInterrupt\n" : `${text}\n`);
  } finally {
    runner.destroy();
  }
  pump.flush();
  post({ type: "done", exitCode, interrupted, truncated: pump.truncated, compileOutput: "" });
}

// loadPyodide starts several downloads at once; when the network drops, the ones it no longer awaits reject
// unhandled. The failure is reported once, through the load promise; the page then replaces this worker.
self.addEventListener("unhandledrejection", (event) => event.preventDefault());

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "load") {
    load().catch((err: unknown) => post({ type: "failed", message: `Python could not be loaded: ${String(err)}` }));
  } else if (message.type === "run") {
    void run(message);
  }
};
