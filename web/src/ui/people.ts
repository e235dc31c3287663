// Who is in the session: everyone who joined (from the API), online when their awareness state is present.
import type { Participant } from "../api";
import type { Awareness } from "y-protocols/awareness";
import { h, initials, safeColor, textOn } from "./dom";

interface Person {
  id: string;
  name: string;
  color: string;
  role: "editor" | "viewer";
  online: boolean;
}

export class PeopleView {
  readonly list = h("ul", { class: "people-list", id: "people" });
  readonly avatars = h("div", { class: "avatars", id: "avatars", role: "group", "aria-label": "Online now" });
  private known: Participant[] = [];
  private refreshTimer = 0;
  private inflight = false;

  constructor(
    /** The people list as this page may read it (by session id, or by viewer id on a read-only link). */
    private readonly load: () => Promise<Participant[]>,
    private readonly awareness: Awareness,
    private readonly selfId: string,
    /** The owner's page: a Remove button beside everyone else (asks for confirmation first). */
    private readonly onRemove: ((person: { id: string; name: string }) => void) | null = null,
  ) {
    awareness.on("change", () => {
      this.render();
      // Someone new appeared: fetch the list again so their name is known even before they type.
      if (this.onlineIds().some((id) => !this.known.some((p) => p.id === id))) this.scheduleRefresh(200);
    });
    void this.refresh();
    window.setInterval(() => void this.refresh(), 20_000);
  }

  private scheduleRefresh(delay: number): void {
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), delay);
  }

  /** Read the list again now (after someone was removed). */
  async refresh(): Promise<void> {
    if (this.inflight) return;
    this.inflight = true;
    try {
      this.known = await this.load();
    } catch {
      // Offline or the server restarting: keep the last list and the live awareness states.
    } finally {
      this.inflight = false;
    }
    this.render();
  }

  private onlineIds(): string[] {
    const ids: string[] = [];
    for (const state of this.awareness.getStates().values()) {
      const user = (state as { user?: { participantId?: unknown } }).user;
      if (user && typeof user.participantId === "string") ids.push(user.participantId);
    }
    return ids;
  }

  private people(): Person[] {
    const online = new Set(this.onlineIds());
    const people: Person[] = this.known.map((p) => ({
      id: p.id,
      name: p.name,
      color: safeColor(p.color),
      role: p.role,
      online: online.has(p.id) || p.id === this.selfId,
    }));
    // Online people the list does not know yet (joined a moment ago): show them from their awareness state.
    for (const state of this.awareness.getStates().values()) {
      const user = (state as { user?: { participantId?: string; name?: string; color?: string } }).user;
      if (user?.participantId && !people.some((p) => p.id === user.participantId)) {
        people.push({
          id: user.participantId,
          name: String(user.name ?? "Someone"),
          color: safeColor(user.color),
          role: "editor",
          online: true,
        });
      }
    }
    return people.sort((a, b) => Number(b.online) - Number(a.online));
  }

  private removeButton(p: Person): HTMLElement | null {
    return this.onRemove ? removeButtonOf(p, this.onRemove) : null;
  }

  render(): void {
    const people = this.people();
    this.list.replaceChildren(
      ...people.map((p) =>
        h(
          "li",
          { "data-participant-id": p.id, "data-online": p.online ? "true" : "false", class: p.online ? "online" : "away" },
          h("span", { class: "avatar", style: p.online ? avatarStyle(p.color) : awayStyle(p.color), "aria-hidden": "true" }, initials(p.name)),
          h("span", { class: "person-name" }, p.name + (p.id === this.selfId ? " (you)" : "")),
          p.role === "viewer" ? h("span", { class: "tag" }, "viewer") : null,
          h("span", { class: "presence" }, p.online ? "online" : "away"),
          p.id !== this.selfId ? this.removeButton(p) : null,
        ),
      ),
    );
    const online = people.filter((p) => p.online);
    const shown = online.slice(0, 5);
    const avatars = shown.map((p) => h("span", { class: "avatar", style: avatarStyle(p.color), title: p.name, role: "img", "aria-label": p.name }, initials(p.name)));
    if (online.length > shown.length) avatars.push(h("span", { class: "avatar more" }, `+${online.length - shown.length}`));
    this.avatars.replaceChildren(...avatars);
  }
}

function removeButtonOf(p: Person, onRemove: (person: { id: string; name: string }) => void): HTMLElement {
  const button = h("button", { class: "button ghost remove-person", title: `Remove ${p.name} from the session`, "aria-label": `Remove ${p.name}` }, "Remove");
  button.addEventListener("click", () => onRemove({ id: p.id, name: p.name }));
  return button;
}

function avatarStyle(color: string): string {
  return `--c:${color};color:${textOn(color)}`;
}

/** Someone away: a ring in their colour around muted initials (fading the whole row took its text under 4.5:1). */
function awayStyle(color: string): string {
  return `--c:transparent;color:var(--muted);box-shadow:inset 0 0 0 2px ${color}`;
}
