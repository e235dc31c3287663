// The type checker's page side: one worker holding the TypeScript compiler, started when a TypeScript program is
// about to run (or the pad is on TypeScript and the page is idle). Imported on first use: even this much stays
// out of what the page loads before the editor works.
import { describeDiagnostics, type CheckReply, type CheckRequest, type CheckResult } from "./typecheck";

/** Longest wait for the compiler to load and check before the program runs unchecked. */
const CHECK_LIMIT_MS = 60_000;

export class TypeChecker {
  private worker: Worker | null = null;
  private loaded: Promise<void> | null = null;
  private next = 1;
  private readonly waiting = new Map<number, (reply: CheckReply) => void>();
  /** Figures for the curious (and the tests): compiler load time and the last check's time, in ms. */
  readonly timings: { loadMs: number | null; lastCheckMs: number | null } = { loadMs: null, lastCheckMs: null };

  private ensure(): Promise<void> {
    if (this.loaded) return this.loaded;
    const started = performance.now();
    const worker = new Worker(new URL("./typecheck.worker.ts", import.meta.url), { type: "module", name: "typecheck" });
    this.worker = worker;
    this.loaded = new Promise<void>((resolve, reject) => {
      worker.addEventListener("message", (event: MessageEvent<CheckReply>) => {
        const reply = event.data;
        if (reply.id === 0) {
          this.timings.loadMs = Math.round(performance.now() - started);
          performance.mark("ccl-typecheck-loaded", { detail: this.timings.loadMs });
          resolve();
          return;
        }
        this.waiting.get(reply.id)?.(reply);
        this.waiting.delete(reply.id);
      });
      worker.addEventListener("error", (event) => {
        this.discard(worker);
        reject(new Error(event.message || "the type checker could not be loaded"));
      });
    });
    this.loaded.catch(() => undefined);
    return this.loaded;
  }

  private discard(worker: Worker): void {
    worker.terminate();
    if (this.worker !== worker) return;
    this.worker = null;
    this.loaded = null;
    for (const resolve of this.waiting.values()) resolve({ id: -1, diagnostics: [], ms: 0, failed: "stopped" });
    this.waiting.clear();
  }

  warm(): void {
    if (navigator.onLine) void this.ensure().catch(() => undefined);
  }

  /** Stop a check in progress; the program it was for does not run. */
  cancel(): void {
    if (this.worker && this.waiting.size) this.discard(this.worker);
  }

  /** The type errors of ``code``. Never throws: a checker that fails or takes too long lets the program run. */
  async check(code: string): Promise<CheckResult> {
    let timer = 0;
    try {
      await this.ensure();
      const worker = this.worker;
      if (!worker) throw new Error("the type checker stopped");
      const id = this.next++;
      const reply = await new Promise<CheckReply>((resolve) => {
        this.waiting.set(id, resolve);
        timer = window.setTimeout(() => {
          this.waiting.delete(id);
          resolve({ id, diagnostics: [], ms: 0, failed: "it took too long" });
        }, CHECK_LIMIT_MS);
        worker.postMessage({ id, code } satisfies CheckRequest);
      });
      if (reply.failed) return { diagnostics: [], text: `Types were not checked (${reply.failed}).\n` };
      this.timings.lastCheckMs = reply.ms;
      performance.mark("ccl-typecheck-checked", { detail: reply.ms });
      return { diagnostics: reply.diagnostics, text: describeDiagnostics(reply.diagnostics) };
    } catch (err) {
      return { diagnostics: [], text: `Types were not checked (${err instanceof Error ? err.message : String(err)}).\n` };
    } finally {
      window.clearTimeout(timer);
    }
  }
}
