// The REST API of our own server, typed. Errors arrive in one shape: {error, detail, fields?}.
import type {
  CreatedOwnerLink,
  HistoryPage,
  HistoryPoint,
  NotesBody,
  OwnerClaim,
  OwnerClaimRequest,
  RotatedInvite,
  RotateInviteRequest,
  SessionExport,
  SessionPolicy,
  SessionPolicyView,
} from "./contracts.gen";
import type { Language } from "./languages";
import type { RunResult } from "./runs";
import { store } from "./store";

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
  /** Whether editors may clear the shared output (absent from servers before the switch existed: allowed). */
  allowClearOutput?: boolean;
  /** Where the workspace's policy lets code run (absent from servers before policies existed: anywhere). */
  execution?: "none" | "browser" | "sandbox";
  /** The languages the workspace's policy allows (null or absent: every one). */
  languages?: Language[] | null;
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
  /** When the owner ended the session (null: open; absent from servers before the owner's controls). */
  endedAt?: string | null;
}

export interface Session extends SessionView {
  id: string;
  /** The read-only link's own id; `viewUrl` is its page, `/v/{viewerId}`. */
  viewerId: string;
  viewUrl: string;
}

export interface CreatedSession extends Session {
  ownerKey: string;
  /** Where the session id alone grants nothing: the editor invite (shown once). */
  editorInvite?: string | null;
}

export interface ServerLanguages {
  enabled: boolean;
  languages: { language: string; available: boolean; missing: string[] }[];
}

export type ServerRunResult = RunResult;

/** What the owner asks for with `PUT /v1/sessions/{id}/policy`: a field left out narrows nothing (`{}` follows the
 * workspace again). */
export type SessionPolicyRequest = Partial<SessionPolicy>;

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
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let detail = `${response.status} ${response.statusText}`;
  try {
    const data = (await response.json()) as { error?: string; detail?: string };
    if (typeof data.error === "string") code = data.error;
    if (typeof data.detail === "string") detail = data.detail;
  } catch {
    // Not our error shape (a proxy in between, say): keep the status line.
  }
  return new ApiError(response.status, code, detail);
}

type StreamedLine =
  | { type: "output"; stream: "stdout" | "stderr" | "compile"; text: string }
  | { type: "result"; result: ServerRunResult }
  | { type: "error"; error: string; detail: string };

/** A session run whose output arrives while the program writes it (NDJSON lines), then its result. */
async function streamedRun(
  path: string,
  body: unknown,
  headers: Record<string, string>,
  signal: AbortSignal,
  onOutput: (stream: "stdout" | "stderr", text: string) => void,
): Promise<ServerRunResult> {
  let response: Response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson", ...headers },
      body: JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "The server cannot be reached. Check your connection.");
  }
  if (!response.ok) throw await errorOf(response);
  if (!(response.headers.get("Content-Type") ?? "").includes("ndjson") || response.body === null) {
    return (await response.json()) as ServerRunResult; // a server that does not stream answers at the end
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    pending += value;
    let end: number;
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = JSON.parse(pending.slice(0, end)) as StreamedLine;
      pending = pending.slice(end + 1);
      if (line.type === "output") onOutput(line.stream === "stdout" ? "stdout" : "stderr", line.text);
      else if (line.type === "result") return line.result;
      else throw new ApiError(response.status, line.error, line.detail);
    }
  }
  throw new ApiError(0, "network_error", "The connection to the server ended before the run did.");
}

const enc = encodeURIComponent;

/** What this browser holds for a session, sent with its requests: a server where the session id alone grants
 * nothing (`api-key` mode) takes any of them; elsewhere they are not needed and are ignored. */
function credentials(sessionId: string): Record<string, string> {
  const headers: Record<string, string> = {};
  const token = (store.participant(sessionId, "editor") ?? store.participant(sessionId, "viewer"))?.token;
  if (token) headers["X-Participant-Token"] = token;
  const ownerKey = store.recent().find((s) => s.id === sessionId)?.ownerKey;
  if (ownerKey) headers["X-Owner-Key"] = ownerKey;
  const invite = store.invite(sessionId);
  if (invite) headers["X-Invite"] = invite;
  return headers;
}

/** What reads a session's history: the owner key where this browser has it, else this browser's participant token
 * (which opens it only where the server lets participants read history). */
function historyCredentials(sessionId: string): Record<string, string> {
  const ownerKey = store.ownerKey(sessionId);
  if (ownerKey) return { "X-Owner-Key": ownerKey };
  const token = (store.participant(sessionId, "editor") ?? store.participant(sessionId, "viewer"))?.token;
  return token ? { "X-Participant-Token": token } : {};
}

export const api = {
  createSession: (title: string, language: Language) =>
    request<CreatedSession>("POST", "/v1/sessions", { title, language }),
  getSession: (id: string) =>
    request<Session>("GET", `/v1/sessions/${enc(id)}`, undefined, undefined, credentials(id)),
  /** Whether an editor invite still opens the session (asked with it alone: false once it was replaced or turned
   * off); other failures (the server out of reach, the session gone) are thrown. */
  inviteOpens: async (id: string, invite: string): Promise<boolean> => {
    try {
      await request<Session>("GET", `/v1/sessions/${enc(id)}`, undefined, undefined, { "X-Invite": invite });
      return true;
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return false;
      throw err;
    }
  },
  join: (id: string, name: string, role: "editor" | "viewer") =>
    request<JoinedParticipant>(
      "POST",
      `/v1/sessions/${enc(id)}/participants`,
      { name, role },
      undefined,
      credentials(id),
    ),
  participants: (id: string) =>
    request<Participant[]>("GET", `/v1/sessions/${enc(id)}/participants`, undefined, undefined, credentials(id)),
  /** The read-only link's side: everything by viewer id, nothing by session id. */
  view: (viewerId: string) => request<SessionView>("GET", `/v1/views/${enc(viewerId)}`),
  joinView: (viewerId: string, name: string) =>
    request<JoinedParticipant>("POST", `/v1/views/${enc(viewerId)}/participants`, { name }),
  viewParticipants: (viewerId: string) => request<Participant[]>("GET", `/v1/views/${enc(viewerId)}/participants`),
  serverLanguages: () => request<ServerLanguages>("GET", "/v1/execute/languages"),
  sessionSettings: (id: string) =>
    request<SessionSettings>("GET", `/v1/sessions/${enc(id)}/settings`, undefined, undefined, credentials(id)),
  /** Run the session's live code on the server as this participant; the server adds it to the shared output.
   * ``onOutput`` hears the output while the program writes it. */
  executeInSession: (
    id: string,
    token: string,
    stdin: string,
    runId: string,
    signal: AbortSignal,
    onOutput: (stream: "stdout" | "stderr", text: string) => void,
  ) =>
    streamedRun(
      `/v1/sessions/${enc(id)}/execute`,
      { stdin, runId },
      { "X-Participant-Token": token },
      signal,
      onOutput,
    ),
  /** Remove every run from the session's shared output, for everyone (editors, while the owner allows it). */
  clearRuns: (id: string, token: string) =>
    request<void>("DELETE", `/v1/sessions/${enc(id)}/runs`, undefined, undefined, { "X-Participant-Token": token }),
  /** Delete the session with everything it holds, for everyone (its owner, with the key from its creation). */
  deleteSession: (id: string, ownerKey: string) =>
    request<void>("DELETE", `/v1/sessions/${enc(id)}`, undefined, undefined, { "X-Owner-Key": ownerKey }),
  /** The owner's controls (the owner key goes in a header, never in a URL). */
  endSession: (id: string, ownerKey: string) =>
    request<Session>("POST", `/v1/sessions/${enc(id)}/end`, undefined, undefined, { "X-Owner-Key": ownerKey }),
  reopenSession: (id: string, ownerKey: string) =>
    request<Session>("POST", `/v1/sessions/${enc(id)}/reopen`, undefined, undefined, { "X-Owner-Key": ownerKey }),
  removeParticipant: (id: string, participantId: string, ownerKey: string) =>
    request<void>("DELETE", `/v1/sessions/${enc(id)}/participants/${enc(participantId)}`, undefined, undefined, {
      "X-Owner-Key": ownerKey,
    }),
  /** What the session's workspace allows, what its owner narrowed, and what applies (anyone who may read it). */
  sessionPolicy: (id: string) =>
    request<SessionPolicyView>("GET", `/v1/sessions/${enc(id)}/policy`, undefined, undefined, credentials(id)),
  /** Replace the owner's narrowing of the workspace's policy; never wider than the workspace (403
   * `forbidden_by_policy`). */
  setSessionPolicy: (id: string, ownerKey: string, policy: SessionPolicyRequest) =>
    request<SessionPolicyView>("PUT", `/v1/sessions/${enc(id)}/policy`, policy, undefined, { "X-Owner-Key": ownerKey }),
  /** A new invite in place of the old one, which stops working (people who joined keep their tokens): `editor`
   * where the session id alone grants nothing (409 `no_editor_invite` elsewhere), `viewer` for the read-only link. */
  rotateInvite: (id: string, ownerKey: string, role: RotateInviteRequest["role"]) =>
    request<RotatedInvite>("POST", `/v1/sessions/${enc(id)}/invites`, { role } satisfies RotateInviteRequest, undefined, {
      "X-Owner-Key": ownerKey,
    }),
  /** Nobody new joins with the editor invite until the owner makes a new one. */
  revokeEditorInvite: (id: string, ownerKey: string) =>
    request<void>("DELETE", `/v1/sessions/${enc(id)}/invites/editor`, undefined, undefined, { "X-Owner-Key": ownerKey }),
  /** A one-time link that makes whoever opens it the session's owner; it replaces the session's previous one. */
  makeOwnerLink: (id: string, ownerKey: string) =>
    request<CreatedOwnerLink>("POST", `/v1/sessions/${enc(id)}/owner-links`, undefined, undefined, { "X-Owner-Key": ownerKey }),
  /** The owner key for an owner link's code (in the body, never in a URL); the code is used up. */
  claimOwnerLink: (id: string, code: string) =>
    request<OwnerClaim>("POST", `/v1/sessions/${enc(id)}/owner-claims`, { code } satisfies OwnerClaimRequest),
  /** A page of the session's timeline (the owner, or a participant where the server lets participants read it):
   * pass the answer's `next` as ``after`` for the next page. */
  history: (id: string, after: number | null, signal?: AbortSignal, limit?: number) =>
    request<HistoryPage>(
      "GET",
      `/v1/sessions/${enc(id)}/history?${new URLSearchParams({ ...(after === null ? {} : { after: String(after) }), ...(limit ? { limit: String(limit) } : {}) })}`,
      undefined,
      signal,
      historyCredentials(id),
    ),
  /** The session right after change ``index``: code, language, title, runs, and who wrote which part. */
  historyAt: (id: string, index: number, signal?: AbortSignal) =>
    request<HistoryPoint>("GET", `/v1/sessions/${enc(id)}/history/at?index=${index}`, undefined, signal, historyCredentials(id)),
  /** Put the code back as it was right after change ``index``, as one live change (owner only). */
  restore: (id: string, ownerKey: string, index: number) =>
    request<Session>("POST", `/v1/sessions/${enc(id)}/restore`, { index }, undefined, { "X-Owner-Key": ownerKey }),
  /** The whole session with its history's Yjs updates (owner only): what the page plays back from. */
  exportSession: (id: string, ownerKey: string, signal?: AbortSignal) =>
    request<SessionExport>("GET", `/v1/sessions/${enc(id)}/export`, undefined, signal, { "X-Owner-Key": ownerKey }),
  /** The owner's private notes; with ``since``, the server waits for a version other than it (long poll). */
  notes: (id: string, ownerKey: string, since: number | null, signal?: AbortSignal) =>
    request<NotesBody>(
      "GET",
      `/v1/sessions/${enc(id)}/notes${since === null ? "" : `?since=${since}`}`,
      undefined,
      signal,
      { "X-Owner-Key": ownerKey },
    ),
  /** Save the whole notes, written on ``version`` (409 `notes_version_conflict` when another tab saved since). */
  saveNotes: (id: string, ownerKey: string, text: string, version: number) =>
    request<NotesBody>("PUT", `/v1/sessions/${enc(id)}/notes`, { text, version }, undefined, { "X-Owner-Key": ownerKey }),
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
