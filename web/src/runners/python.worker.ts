/// <reference lib="webworker" />
// Runs Python in Pyodide, loaded from our own server (standard library only; nothing from elsewhere).
// Pyodide only loads in a module worker. Stop works through Pyodide's interrupt buffer (SharedArrayBuffer);
// the page terminates the worker when that does not stop the program in time.
import type { PyodideInterface } from "pyodide";
import { OutputPump, type FromWorker, type RunMessage, type ToWorker } from "./protocol";

declare const self: DedicatedWorkerGlobalScope;

const post = (m: FromWorker): void => self.postMessage(m);

// Runs the program as __main__ in a fresh namespace each time, and turns the ways a program ends into an exit
// status the way CPython would, with the traceback trimmed to the user's own frames.
const PRELUDE = `
import sys, traceback

def _ccl_run(source):
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        code = compile(source, "main.py", "exec")
        exec(code, namespace)
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
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
`;

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

  const runner = py.globals.get("_ccl_run") as (source: string) => number;
  post({ type: "started" });
  let exitCode: number | null = 1;
  let interrupted = false;
  try {
    const rc = runner(message.code);
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
    if (typeof (runner as { destroy?: () => void }).destroy === "function") {
      (runner as unknown as { destroy: () => void }).destroy();
    }
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
