// How the page reaches its session: by session id (the editor link, /s/{id}) or by viewer id (the read-only link,
// /v/{viewerId}). A read-only page never learns the session id: every request and the live connection name the
// viewer id only, and what it stores is keyed by the viewer id.
import { api, type JoinedParticipant, type Participant, type SessionView } from "./api";

export type PadRoute = { kind: "session"; sessionId: string; view: boolean } | { kind: "view"; viewerId: string };

export interface PadInfo extends SessionView {
  /** Links the Share menu offers: a read-only page knows only its own. ``editor`` is the session's page; where
   * the session id alone grants nothing, the Share menu adds the invite this browser holds (invites.ts). */
  links: { editor: string | null; viewer: string };
}

export interface PadAccess {
  readonly role: "editor" | "viewer";
  /** Known to editor links only: server runs and the owner's settings are addressed by it. */
  readonly sessionId: string | null;
  /** What this browser files the page under: its participant, its entry among recent sessions. */
  readonly key: string;
  /** The page's own path, for the recent sessions list. */
  readonly path: string;
  /** The live endpoint as y-websocket takes it: server URL path and room name. */
  readonly live: { path: string; room: string };
  load(): Promise<PadInfo>;
  join(name: string): Promise<JoinedParticipant>;
  participants(): Promise<Participant[]>;
}

const enc = encodeURIComponent;

export function padAccess(route: PadRoute): PadAccess {
  const origin = location.origin;
  if (route.kind === "view") {
    const { viewerId } = route;
    const path = `/v/${enc(viewerId)}`;
    return {
      role: "viewer",
      sessionId: null,
      key: `view.${viewerId}`,
      path,
      live: { path: "/v1/collab/v", room: enc(viewerId) },
      load: async () => ({ ...(await api.view(viewerId)), links: { editor: null, viewer: origin + path } }),
      join: (name) => api.joinView(viewerId, name),
      participants: () => api.viewParticipants(viewerId),
    };
  }
  const { sessionId, view } = route;
  // `/s/{id}?view=1`, the read-only link of old, still watches; it always carried the editor link.
  const role = view ? "viewer" : "editor";
  return {
    role,
    sessionId,
    key: sessionId,
    path: `/s/${enc(sessionId)}`,
    live: { path: "/v1/collab", room: enc(sessionId) },
    load: async () => {
      const session = await api.getSession(sessionId);
      return { ...session, links: { editor: `${origin}/s/${enc(sessionId)}`, viewer: origin + session.viewUrl } };
    },
    join: (name) => api.join(sessionId, name, role),
    participants: () => api.participants(sessionId),
  };
}
