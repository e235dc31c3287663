// The page's side of a run: starts the right runner, enforces the time limit, and stops it on request.
// In-browser runners live in workers; Stop first asks politely (interrupt buffer / flag), then terminates the
// worker, which nothing running inside it can survive.
import { api, ApiError } from "../api";
import type { Language } from "../languages";
import { capUtf8, classify, MAX_STREAM_BYTES, type Outcome, type OutputChunk } from "../runs";
import type { FromWorker, Stream } from "./protocol";
import { typeErrorsPreference } from "./typecheck";
import type { TypeChecker } from "./typechecker";

export interface RunRequest {
  code: string;
  language: Language;
  stdin: string;
  limitMs: number;
  /** Server runs go through the session, so the owner's switch applies and the server shares the output. */
  sessionId: string;
  token: string;
  /** The id of the run's live card and shared record (a server run is started with it); made here if absent. */
  runId?: string;
}

export interface RunOutcome {
  source: "browser" | "server";
  stdout: string;
  stderr: string;
  /** Both streams in the order they were written (browser runs). */
  output?: OutputChunk[];
  exitCode: number | null;
  signal: number | null;
  signalName: string | null;
  timedOut: boolean;
  stopped: boolean;
  outputTruncated: boolean;
  outcome: Outcome;
  compileOutput: string;
  durationMs: number;
  /** The server already added this run to the session's shared output. */
  shared?: boolean;
  /** A module the program imports that the browser's Python does not have (the server's may). */
  missingModule?: string;
}

export interface RunEvents {
  /** What the runner is doing before the program starts ("Loading Python…"). */
  phase(text: string): void;
  output(stream: Stream, text: string): void;
}

const SIGINT = 2;
const SIGKILL = 9;
/** How long a program gets to honour an interrupt before its worker is terminated. */
const GRACE_MS = 1500;
/** Longest time a runner may take to load before the run is given up. */
const LOAD_LIMIT_MS = 120_000;
/** How long the server gets to answer a Stop before the run's request is dropped (which stops it too). */
const SERVER_STOP_GRACE_MS = 3000;

/** The id a server run is started with: Stop names it, and the shared record carries it. */
function newRunId(): string {
  // crypto.randomUUID needs a secure context; a LAN deployment over plain HTTP is not one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

interface ActiveRun {
  stop(timedOut: boolean): void;
}

/** One kind of worker (Python or JavaScript), kept warm between runs and replaced after it is terminated. */
class WorkerRunner {
  private worker: Worker | null = null;
  private active: ActiveRun | null = null;
  /** The current worker has its runtime loaded. */
  private ready = false;

  constructor(
    private readonly create: () => Worker,
    private readonly label: string,
  ) {}

  private ensure(): Worker {
    if (!this.worker) {
      const worker = this.create();
      this.ready = false;
      worker.addEventListener("message", (event: MessageEvent<FromWorker>) => {
        if (event.data.type === "ready" && this.worker === worker) this.ready = true;
      });
      this.worker = worker;
    }
    return this.worker;
  }

  /** Start loading the runtime in the background so the first run does not wait for it. */
  warm(): void {
    if (this.worker || !navigator.onLine) return;
    const worker = this.ensure();
    const onMessage = (event: MessageEvent<FromWorker>): void => {
      if (event.data.type === "ready") worker.removeEventListener("message", onMessage);
      // A runtime that failed half way through loading is not worth reusing: the next run starts afresh.
      if (event.data.type === "failed" && !this.active) this.discard(worker);
    };
    worker.addEventListener("message", onMessage);
    worker.postMessage({ type: "load" });
  }

  private discard(worker: Worker): void {
    worker.terminate();
    if (this.worker === worker) this.worker = null;
  }

  stop(): void {
    this.active?.stop(false);
  }

  /** ``preface`` goes to stderr before the program's output (the type checker's findings). */
  run(
    request: RunRequest,
    language: "python" | "javascript" | "typescript",
    events: RunEvents,
    preface = "",
  ): Promise<RunOutcome> {
    const worker = this.ensure();
    const shared = typeof SharedArrayBuffer !== "undefined" && crossOriginIsolated;
    const interrupt = shared ? new SharedArrayBuffer(4) : null;
    const out: Record<Stream, string> = { stdout: "", stderr: "" };
    const output: OutputChunk[] = [];
    let truncated = false;

    return new Promise<RunOutcome>((resolve) => {
      let startedAt = 0;
      let stopRequested = false;
      let timedOut = false;
      let finished = false;
      let missingModule: string | undefined;
      let limitTimer = 0;
      let killTimer = 0;
      const loadTimer = window.setTimeout(() => halt(false, `${this.label} did not load in time.`), LOAD_LIMIT_MS);

      type Ending = Pick<RunOutcome, "exitCode" | "signal" | "timedOut" | "stopped" | "outputTruncated" | "compileOutput">;
      const finish = (ending: Ending): void => {
        if (finished) return;
        finished = true;
        window.clearTimeout(loadTimer);
        window.clearTimeout(limitTimer);
        window.clearTimeout(killTimer);
        worker.removeEventListener("message", onMessage);
        this.active = null;
        const flags = { ...ending, outputTruncated: ending.outputTruncated || truncated };
        resolve({
          ...flags,
          ...classify(flags),
          ...(missingModule ? { missingModule } : {}),
          source: "browser",
          stdout: out.stdout,
          stderr: out.stderr,
          output,
          durationMs: startedAt ? Math.round(performance.now() - startedAt) : 0,
        });
      };

      const append = (stream: Stream, text: string): void => {
        const capped = capUtf8(out[stream] + text, MAX_STREAM_BYTES);
        if (capped.cut) truncated = true;
        const added = capped.text.slice(out[stream].length);
        out[stream] = capped.text;
        if (!added) return;
        const last = output.at(-1);
        if (last && last[0] === stream) last[1] += added;
        else output.push([stream, added]);
        events.output(stream, added);
      };

      const terminate = (note: string): void => {
        this.discard(worker);
        append("stderr", `${out.stderr && !out.stderr.endsWith("\n") ? "\n" : ""}${note}\n`);
        finish({
          exitCode: null,
          signal: SIGKILL,
          timedOut,
          stopped: stopRequested,
          outputTruncated: false,
          compileOutput: "",
        });
      };

      const halt = (byLimit: boolean, note?: string): void => {
        if (finished) return;
        timedOut ||= byLimit;
        stopRequested ||= !byLimit;
        if (note || !interrupt || !startedAt) {
          terminate(note ?? (byLimit ? "Time limit reached: the runner was stopped." : "Stopped."));
          return;
        }
        // Pyodide reads 2 (SIGINT) from its interrupt buffer; the QuickJS handler reads any non-zero value.
        Atomics.store(new Int32Array(interrupt), 0, SIGINT);
        killTimer ||= window.setTimeout(
          () => terminate(byLimit ? "Time limit reached: the runner was terminated." : "Stopped: the runner was terminated."),
          GRACE_MS,
        );
      };

      const onMessage = (event: MessageEvent<FromWorker>): void => {
        const m = event.data;
        switch (m.type) {
          case "loading":
            events.phase(`Loading ${m.what}…`);
            break;
          case "ready":
            break;
          case "started":
            window.clearTimeout(loadTimer);
            startedAt = performance.now();
            events.phase("Running…");
            if (stopRequested) halt(false);
            limitTimer = window.setTimeout(() => halt(true), request.limitMs);
            break;
          case "output":
            for (const [stream, text] of m.chunks) append(stream, text);
            break;
          case "done": {
            const elapsed = performance.now() - startedAt;
            // The JS worker enforces the same deadline itself and may get there before our timer: it says so
            // (our clock starts when its "started" arrives, which a busy machine delays).
            if (m.interrupted && !stopRequested && !m.truncated && (m.deadlineReached || elapsed >= request.limitMs - 50)) {
              timedOut = true;
            }
            missingModule = m.missingModule;
            if (timedOut && m.interrupted) append("stderr", `Time limit reached (${request.limitMs / 1000} s).`);
            else if (m.truncated) append("stderr", "\nOutput limit reached: the program was stopped.");
            finish({
              exitCode: m.interrupted ? null : m.exitCode,
              signal: m.interrupted ? SIGINT : null,
              timedOut,
              stopped: stopRequested,
              outputTruncated: m.truncated,
              compileOutput: m.compileOutput,
            });
            break;
          }
          case "failed":
            this.discard(worker);
            append("stderr", m.message);
            finish({ exitCode: null, signal: null, timedOut: false, stopped: false, outputTruncated: false, compileOutput: "" });
            break;
        }
      };

      this.active = { stop: (byLimit) => halt(byLimit) };
      if (!this.ready) events.phase(`Loading ${this.label}…`);
      if (preface) append("stderr", preface);
      worker.addEventListener("message", onMessage);
      worker.postMessage({
        type: "run",
        code: request.code,
        language,
        stdin: request.stdin,
        interrupt,
        limitMs: request.limitMs,
        maxOutputBytes: MAX_STREAM_BYTES,
      });
    });
  }
}

/** Runs code where this deployment can: Python/JS/TS in the browser, Java/C++ on the server when enabled. */
export class Runners {
  private readonly python = new WorkerRunner(
    () => new Worker(new URL("./python.worker.ts", import.meta.url), { type: "module", name: "python" }),
    "Python",
  );
  private readonly js = new WorkerRunner(
    () => new Worker(new URL("./js.worker.ts", import.meta.url), { type: "module", name: "javascript" }),
    "JavaScript",
  );
  private serverRun: ActiveRun | null = null;
  /** Loaded only for TypeScript: the compiler is megabytes the other languages never need. */
  private types: Promise<TypeChecker> | null = null;
  private stopCheck: (() => void) | null = null;

  constructor(private readonly serverLanguages: () => ReadonlySet<string>) {}

  /** Why ``language`` cannot run here, or null when it can. */
  unavailable(language: Language): string | null {
    if (language === "python" || language === "javascript" || language === "typescript") return null;
    if (this.serverLanguages().has(language)) return null;
    const label = language === "cpp" ? "C++" : "Java";
    return `This deployment does not run ${label}: server-side execution is not enabled here. Python, JavaScript and TypeScript run in your browser.`;
  }

  warm(language: Language): void {
    if (language === "python") this.python.warm();
    else if (language === "javascript" || language === "typescript") this.js.warm();
    if (language === "typescript") void this.checker().then((checker) => checker.warm(), () => undefined);
  }

  stop(): void {
    this.stopCheck?.();
    this.python.stop();
    this.js.stop();
    this.serverRun?.stop(false);
  }

  /** Run where the language runs; ``onServer`` sends an in-browser language to the server's sandbox instead. */
  async run(request: RunRequest, events: RunEvents, onServer = false): Promise<RunOutcome> {
    const lang = request.language;
    if (onServer) return this.runOnServer(request, events);
    if (lang === "python") return this.python.run(request, "python", events);
    if (lang === "typescript") return this.runTypeScript(request, events);
    if (lang === "javascript") return this.js.run(request, lang, events);
    return this.runOnServer(request, events);
  }

  private checker(): Promise<TypeChecker> {
    this.types ??= import("./typechecker").then((m) => new m.TypeChecker());
    this.types.catch(() => (this.types = null));
    return this.types;
  }

  /** Whether the server's sandbox runs ``language`` (the page offers it when the browser cannot run a program). */
  serverRuns(language: Language): boolean {
    return this.serverLanguages().has(language);
  }

  /**
   * Type errors are reported first, with their lines, then the program runs anyway (types are erased), unless
   * this browser chose to stop on them.
   */
  private async runTypeScript(request: RunRequest, events: RunEvents): Promise<RunOutcome> {
    let stopped = false;
    let checker: TypeChecker | null = null;
    this.stopCheck = () => {
      stopped = true;
      checker?.cancel();
    };
    const started = performance.now();
    events.phase("Checking types…");
    const result = await this.checker()
      .then((loaded) => {
        checker = loaded;
        return stopped ? { diagnostics: [], text: "" } : loaded.check(request.code);
      })
      .catch((err: unknown) => ({ diagnostics: [], text: `Types were not checked (${String(err)}).\n` }))
      .finally(() => (this.stopCheck = null));
    const count = result.diagnostics.length;
    const stop = count > 0 && typeErrorsPreference.stop();
    let preface = result.text;
    if (count) {
      const errors = `${count} type error${count === 1 ? "" : "s"}`;
      preface += stop ? `Found ${errors}: not run (stop on type errors is on).\n` : `Found ${errors}; running anyway.\n`;
    }
    if (!stopped && !stop) return this.js.run(request, "typescript", events, preface);
    const flags = { exitCode: stopped ? null : 1, signal: null, timedOut: false, stopped, outputTruncated: false };
    const stderr = stopped ? "Stopped.\n" : preface;
    events.output("stderr", stderr);
    return {
      ...flags,
      ...classify(flags),
      source: "browser",
      stdout: "",
      stderr,
      output: [["stderr", stderr]],
      compileOutput: stopped ? "" : preface,
      durationMs: Math.round(performance.now() - started),
    };
  }

  private async runOnServer(request: RunRequest, events: RunEvents): Promise<RunOutcome> {
    const abort = new AbortController();
    const runId = request.runId ?? newRunId();
    let giveUp = 0;
    // Stop kills the run's sandbox on the server, and the run's own request then answers "stopped": the server
    // records the run once, for everyone. Only aborting the request would leave the program running there until
    // its time limit, and its record would arrive after the page had already given up on it.
    this.serverRun = {
      stop: () => {
        if (giveUp) return;
        events.phase("Stopping…");
        // The server also stops a run whose client goes away: the fallback when the stop cannot get through.
        giveUp = window.setTimeout(() => abort.abort(), SERVER_STOP_GRACE_MS);
        api.stopRun(request.sessionId, runId, request.token).catch(() => abort.abort());
      },
    };
    const started = performance.now();
    events.phase("Running on the server…");
    try {
      // The output shows (and reaches the others' live card) while the program writes it; the result replaces it.
      const r = await api.executeInSession(request.sessionId, request.token, request.stdin, runId, abort.signal,
        (stream, text) => events.output(stream, text));
      return { ...r, source: "server", stopped: r.outcome === "stopped", shared: true };
    } catch (err) {
      // Dropped after Stop: the server saw the client go away, stopped the run and records it itself.
      if (err instanceof DOMException && err.name === "AbortError") return this.stoppedOnServer(started);
      const message = err instanceof ApiError ? `${err.message} (${err.code})` : String(err);
      const flags = { exitCode: null, signal: null, timedOut: false, stopped: false, outputTruncated: false };
      return {
        ...flags,
        ...classify(flags),
        source: "server",
        stdout: "",
        stderr: `${message}\n`,
        compileOutput: "",
        durationMs: Math.round(performance.now() - started),
      };
    } finally {
      window.clearTimeout(giveUp);
      this.serverRun = null;
    }
  }

  private stoppedOnServer(started: number): RunOutcome {
    const flags = { exitCode: null, signal: null, timedOut: false, stopped: true, outputTruncated: false };
    return {
      ...flags,
      ...classify(flags),
      source: "server",
      stdout: "",
      stderr: "",
      compileOutput: "",
      durationMs: Math.round(performance.now() - started),
      shared: true,
    };
  }
}
