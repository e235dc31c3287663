// The REST API of our own server, typed. Errors arrive in one shape: {error, detail, fields?}.
import type { Language } from "./languages";
import type { RunResult } from "./runs";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(detail);
  }
}

export interface Participant {
  id: string;
  name: string;
  color: string;
  role: "editor" | "viewer";
  joinedAt: string;
  online: boolean;
}

export interface SessionSettings {
  executionEnabled: boolean;
}

export interface JoinedParticipant extends Participant {
  token: string;
}

/** A session as its read-only link shows it: no session id, nothing that leads to it. */
export interface SessionView {
  title: string;
  language: Language;
  code: string;
  createdAt: string;
  updatedAt: string;
  participants: Participant[];
}

export interface Session extends SessionView {
  id: string;
  /** The read-only link's own id; `viewUrl` is its page, `/v/{viewerId}`. */
  viewerId: string;
  viewUrl: string;
}

export interface CreatedSession extends Session {
  ownerKey: string;
}

export interface ServerLanguages {
  enabled: boolean;
  languages: { language: string; available: boolean; missing: string[] }[];
}

export type ServerRunResult = RunResult;

async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
  extraHeaders: Record<string, string> = {},
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? extraHeaders : { "Content-Type": "application/json", ...extraHeaders },
      body: body === undefined ? null : JSON.stringify(body),
      signal: signal ?? null,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "The server cannot be reached. Check your connection.");
  }
  if (!response.ok) {
    let code = `http_${response.status}`;
    let detail = `${response.status} ${response.statusText}`;
    try {
      const data = (await response.json()) as { error?: string; detail?: string };
      if (typeof data.error === "string") code = data.error;
      if (typeof data.detail === "string") detail = data.detail;
    } catch {
      // Not our error shape (a proxy in between, say): keep the status line.
    }
    throw new ApiError(response.status, code, detail);
  }
  return (await response.json()) as T;
}

const enc = encodeURIComponent;

export const api = {
  createSession: (title: string, language: Language) =>
    request<CreatedSession>("POST", "/v1/sessions", { title, language }),
  getSession: (id: string) => request<Session>("GET", `/v1/sessions/${enc(id)}`),
  join: (id: string, name: string, role: "editor" | "viewer") =>
    request<JoinedParticipant>("POST", `/v1/sessions/${enc(id)}/participants`, { name, role }),
  participants: (id: string) => request<Participant[]>("GET", `/v1/sessions/${enc(id)}/participants`),
  /** The read-only link's side: everything by viewer id, nothing by session id. */
  view: (viewerId: string) => request<SessionView>("GET", `/v1/views/${enc(viewerId)}`),
  joinView: (viewerId: string, name: string) =>
    request<JoinedParticipant>("POST", `/v1/views/${enc(viewerId)}/participants`, { name }),
  viewParticipants: (viewerId: string) => request<Participant[]>("GET", `/v1/views/${enc(viewerId)}/participants`),
  serverLanguages: () => request<ServerLanguages>("GET", "/v1/execute/languages"),
  sessionSettings: (id: string) => request<SessionSettings>("GET", `/v1/sessions/${enc(id)}/settings`),
  /** Run the session's live code on the server as this participant; the server adds it to the shared output. */
  executeInSession: (id: string, token: string, stdin: string, runId: string, signal: AbortSignal) =>
    request<ServerRunResult>("POST", `/v1/sessions/${enc(id)}/execute`, { stdin, runId }, signal, {
      "X-Participant-Token": token,
    }),
  /** Kill the server run started with ``runId``; its own request then answers with the outcome "stopped". */
  stopRun: (id: string, runId: string, token: string) =>
    request<{ runId: string; running: boolean }>(
      "POST",
      `/v1/sessions/${enc(id)}/runs/${enc(runId)}/stop`,
      undefined,
      undefined,
      { "X-Participant-Token": token },
    ),
};
