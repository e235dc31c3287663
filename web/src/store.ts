// What this browser remembers: the person's name, the sessions it created or opened, and its participant in
// each session (token included, so a reload rejoins as the same participant instead of a new one). Entries of a
// read-only link are filed under its viewer id.
import type { Language } from "./languages";

export interface RecentSession {
  /** The session id, or for a read-only link `view.{viewerId}` (its page never learns the session id). */
  id: string;
  /** The page to reopen when it is not `/s/{id}`. */
  path?: string;
  title: string;
  language: Language;
  ownerKey?: string;
  openedAt: string;
}

export interface StoredParticipant {
  id: string;
  token: string;
  name: string;
  color: string;
  role: "editor" | "viewer";
}

const NAME_KEY = "ccl.name";
const RECENT_KEY = "ccl.recent";
const MAX_RECENT = 12;

function read<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? null : (JSON.parse(raw) as T);
  } catch {
    return null;
  }
}

function write(key: string, value: unknown): void {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled (private mode): the page still works, it just forgets.
  }
}

export const store = {
  name: (): string => read<string>(NAME_KEY) ?? "",
  setName: (name: string): void => write(NAME_KEY, name),

  recent: (): RecentSession[] => read<RecentSession[]>(RECENT_KEY) ?? [],
  remember(entry: Omit<RecentSession, "openedAt">): void {
    const list = store.recent();
    const previous = list.find((s) => s.id === entry.id);
    const merged: RecentSession = { ...previous, ...entry, openedAt: new Date().toISOString() };
    if (previous?.ownerKey && !entry.ownerKey) merged.ownerKey = previous.ownerKey;
    write(RECENT_KEY, [merged, ...list.filter((s) => s.id !== entry.id)].slice(0, MAX_RECENT));
  },

  /** The session's invite, from the link that opened it (servers where the session id alone grants nothing). */
  invite: (sessionId: string): string | null => read<string>(`ccl.invite.${sessionId}`),
  setInvite: (sessionId: string, invite: string): void => write(`ccl.invite.${sessionId}`, invite),
  /** An invite turned off: nothing to send or share any more. */
  forgetInvite: (sessionId: string): void => {
    try {
      localStorage.removeItem(`ccl.invite.${sessionId}`);
    } catch {
      // Nothing to forget.
    }
  },
  /** Keep the owner key handed over by an owner link, with the session (its title and language come when it is
   * loaded: until then, placeholders). */
  setOwnerKey(sessionId: string, ownerKey: string): void {
    const list = store.recent();
    const previous = list.find((s) => s.id === sessionId);
    const entry: RecentSession = previous
      ? { ...previous, ownerKey }
      : { id: sessionId, title: "Untitled session", language: "python", ownerKey, openedAt: new Date().toISOString() };
    write(RECENT_KEY, [entry, ...list.filter((s) => s.id !== sessionId)].slice(0, MAX_RECENT));
  },
  /** The owner key of a session this browser created or was handed by an owner link (null: not its owner). */
  ownerKey: (sessionId: string): string | null => store.recent().find((s) => s.id === sessionId)?.ownerKey ?? null,
  /** A deleted session: off the recent list, and its participants forgotten. */
  forgetSession(sessionId: string): void {
    write(RECENT_KEY, store.recent().filter((s) => s.id !== sessionId));
    store.forgetParticipant(sessionId, "editor");
    store.forgetParticipant(sessionId, "viewer");
    store.forgetInvite(sessionId);
  },

  participant: (sessionId: string, role: "editor" | "viewer"): StoredParticipant | null =>
    read<StoredParticipant>(`ccl.participant.${sessionId}.${role}`),
  setParticipant: (sessionId: string, p: StoredParticipant): void =>
    write(`ccl.participant.${sessionId}.${p.role}`, p),
  forgetParticipant: (sessionId: string, role: "editor" | "viewer"): void => {
    try {
      localStorage.removeItem(`ccl.participant.${sessionId}.${role}`);
    } catch {
      // Nothing to forget.
    }
  },
};
