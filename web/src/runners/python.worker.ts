/// <reference lib="webworker" />
// Runs Python in Pyodide, loaded from our own server: the standard library, plus the pure-Python packages the
// server has under /py-packages/ (scripts/setup fetches them), each loaded only when a program imports it.
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

_ccl_available = ()
_ccl_missing = None

def _ccl_imports(source):
    # Top-level names of every import in the program (inside functions too). Top-level await is allowed here,
    # which pyodide.code.find_imports does not parse.
    try:
        tree = compile(source, "main.py", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except (SyntaxError, ValueError):
        return []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return sorted(names)

def _ccl_preimport(names):
    # Importing sympy or networkx compiles hundreds of modules (seconds in WebAssembly): done while the page says
    # "Loading", it does not eat into the program's time limit. A failure shows again when the program imports.
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:
            pass

def _ccl_report_missing(exc):
    # A module this browser cannot have (numpy and friends are compiled code): say what is here instead of a
    # bare traceback, and let the page offer the server.
    global _ccl_missing
    name = (exc.name or "").split(".")[0]
    if not name or name in _ccl_available:
        return False  # one of ours, imported in a way the program's source does not show: the traceback says how
    try:
        import importlib.util
        if importlib.util.find_spec(name) is not None:
            return False  # the top level exists: a submodule is missing, the traceback says more
    except Exception:
        pass
    _ccl_missing = name
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "main.py"]
    where = f"main.py line {frames[-1].lineno}: " if frames else ""
    extra = ", ".join(_ccl_available) if _ccl_available else "no other packages"
    print(f"{where}ModuleNotFoundError: No module named {name!r}", file=sys.stderr)
    print(
        f"{name} is not available in the browser's Python. It has the standard library and: {extra}.",
        file=sys.stderr,
    )
    return True

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
    global _ccl_missing
    _ccl_missing = None
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
    except ModuleNotFoundError as exc:
        if not _ccl_report_missing(exc):
            _ccl_print_exception(exc)
        return 1
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

/** Where the server serves the extra packages' wheels, and the lock entries describing them. */
const PACKAGES_BASE = "/py-packages/";

interface PackageEntry {
  name: string;
  imports: string[];
}

/** Import name -> package name, for the packages the server has. */
let packagesByImport = new Map<string, string>();

/**
 * Pyodide's own lock file describes packages this server does not have (numpy, ...): asking for one would
 * fail on a missing file. The lock Pyodide gets lists the server's packages only, with Pyodide's own header.
 */
async function lockFile(): Promise<{ info: unknown; packages: Record<string, PackageEntry> }> {
  const own = (await (await fetch(`${__PYODIDE_BASE__}pyodide-lock.json`)).json()) as { info: unknown };
  let packages: Record<string, PackageEntry> = {};
  try {
    const response = await fetch(`${PACKAGES_BASE}lock.json`);
    if (response.ok) packages = ((await response.json()) as { packages: Record<string, PackageEntry> }).packages;
  } catch {
    // No extra packages on this server: the standard library still works.
  }
  packagesByImport = new Map(Object.values(packages).flatMap((p) => p.imports.map((i) => [i, p.name] as const)));
  return { info: own.info, packages };
}

function load(): Promise<PyodideInterface> {
  if (pyodide) return pyodide;
  post({ type: "loading", what: "Python" });
  pyodide = (async () => {
    const url = `${__PYODIDE_BASE__}pyodide.mjs`;
    const mod = (await import(/* @vite-ignore */ url)) as typeof import("pyodide");
    const lock = await lockFile();
    const py = await mod.loadPyodide({
      indexURL: __PYODIDE_BASE__,
      packages: [],
      lockFileContents: JSON.stringify(lock),
      packageBaseUrl: new URL(PACKAGES_BASE, self.location.href).href,
    });
    py.runPython(PRELUDE);
    py.globals.set("_ccl_available", py.toPy([...packagesByImport.keys()].filter((n) => !n.startsWith("_")).sort()));
    post({ type: "ready" });
    return py;
  })();
  pyodide.catch(() => {
    pyodide = null;
  });
  return pyodide;
}

/**
 * Fetch the packages the program imports (with what they depend on) before it starts. An import this server has
 * no package for is left to Python, which reports it when the program gets there. Problems are written to the
 * program's stderr: the program then runs and meets them as ImportErrors.
 */
async function loadImports(py: PyodideInterface, code: string, report: (text: string) => void): Promise<void> {
  const problems: string[] = [];
  try {
    const findImports = py.globals.get("_ccl_imports") as PyCallable;
    const imported = findImports(code) as { toJs(): string[]; destroy(): void };
    findImports.destroy();
    const names = imported.toJs().filter((name) => packagesByImport.has(name));
    imported.destroy();
    const wanted = [...new Set(names.flatMap((name) => packagesByImport.get(name) ?? []))];
    if (!wanted.length) return;
    post({ type: "loading", what: wanted.join(", ") });
    await py.loadPackage(wanted, { messageCallback: () => undefined, errorCallback: (m) => problems.push(m) });
    const preimport = py.globals.get("_ccl_preimport") as PyCallable;
    try {
      preimport(names);
    } finally {
      preimport.destroy();
    }
  } catch (err) {
    problems.push(String(err));
  }
  if (problems.length) report(`${problems.join("\n")}\n`);
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

  await loadImports(py, message.code, (text) => pump.write("stderr", text));

  const runner = py.globals.get("_ccl_run") as PyCallable;
  post({ type: "started" });
  let exitCode: number | null;
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
  const missing = py.globals.get("_ccl_missing") as unknown;
  post({
    type: "done",
    exitCode,
    interrupted,
    truncated: pump.truncated,
    compileOutput: "",
    ...(typeof missing === "string" ? { missingModule: missing } : {}),
  });
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
