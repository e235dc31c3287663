// Who made a change of the shared document, told by the document itself rather than by a field anyone could write.
//
// Every Yjs item carries the client id of the document that wrote it, and the server refuses an update that writes
// under a client id belonging to another participant. Each page's awareness state is keyed by that same client id,
// and its `user` (name, participant id) is rebuilt by the server from the participant's identity, whatever the
// client claimed. So the writer of a map entry's current value is the person whose awareness speaks for its item's
// client id. Names are remembered after their state goes away, so a change that arrives after its writer left (an
// offline edit synced on reconnect) is still named.
import type { Awareness } from "y-protocols/awareness";
import type * as Y from "yjs";
import type { Collab } from "./collab";
import { isLanguage, languageInfo } from "./languages";

export interface Author {
  name: string;
  participantId: string;
}

export class Authors {
  private readonly known = new Map<number, Author>();

  constructor(awareness: Awareness) {
    const remember = (): void => {
      for (const [client, state] of awareness.getStates()) {
        const user = (state as { user?: { name?: unknown; participantId?: unknown } }).user;
        if (user && typeof user.name === "string" && typeof user.participantId === "string") {
          this.known.set(client, { name: user.name, participantId: user.participantId });
        }
      }
    };
    awareness.on("change", remember);
    remember();
  }

  /** Who wrote the current value of `key` in `map`; null when no person on the pad did (the server, through the
   * API) or when the writer was never seen. */
  ofEntry(map: Y.Map<unknown>, key: string): Author | null {
    // Yjs keeps a map's entries as items in `_map` (part of its typed API, used by editor bindings alike).
    const item = map._map.get(key);
    return item ? (this.known.get(item.id.client) ?? null) : null;
  }
}

/** Tell this page's person (participant `selfId`), through `show`, who switched the session's language, whenever
 * someone does. */
export function announceLanguageSwitches(collab: Collab, selfId: string, show: (text: string) => void): void {
  const authors = new Authors(collab.awareness);
  collab.meta.observe((event, transaction) => {
    // The first sync brings the language the pad already had: nobody switched anything.
    if (!event.keysChanged.has("language") || !collab.hasSynced) return;
    const language = collab.meta.get("language");
    if (!isLanguage(language) || event.changes.keys.get("language")?.oldValue === language) return;
    const label = languageInfo(language).label;
    const author = transaction.local ? null : authors.ofEntry(collab.meta, "language");
    if (transaction.local || author?.participantId === selfId) show(`You switched to ${label}`);
    else if (author) show(`${author.name} switched to ${label}`);
    else show(`The language was switched to ${label}`);
  });
}
