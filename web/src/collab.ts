// The live document: one Y.Doc per session, synced over our server's y-websocket endpoint.
// Schema (shared with the server): Y.Text "code", Y.Map "meta" {language, title}, Y.Array "runs".
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import type { Awareness } from "y-protocols/awareness";
import { sessionEndedBy } from "./authMessage";
import { CLOSE } from "./contracts.gen";
import { safeColor } from "./ui/dom";

export type LinkState = "connecting" | "connected" | "offline";

export interface CollabUser {
  name: string;
  color: string;
  colorLight: string;
  participantId: string;
}

export interface CollabStatus {
  link: LinkState;
  /** The first sync with the server finished (the document is the shared one, not an empty local copy). */
  synced: boolean;
  /** Local edits made while not connected, not yet acknowledged by a sync. */
  pending: boolean;
}

/** Closes after which reconnecting is the right answer: the condition passes. */
const TRANSIENT = new Set<number>([CLOSE.SLOW_CLIENT, CLOSE.TOO_MANY]);

export class Collab {
  readonly doc = new Y.Doc();
  readonly text: Y.Text;
  readonly meta: Y.Map<unknown>;
  readonly runs: Y.Array<Record<string, unknown>>;
  readonly provider: WebsocketProvider;
  readonly awareness: Awareness;
  private status: CollabStatus = { link: "connecting", synced: false, pending: false };
  private listeners = new Set<(s: CollabStatus) => void>();
  private everSynced = false;

  /** ``live``: the endpoint's path and room, `/v1/collab` + session id, or `/v1/collab/v` + viewer id. */
  constructor(
    live: { path: string; room: string },
    token: string,
    user: CollabUser,
    onClosed: (code: number, reason: string) => void,
    /** The server says the owner ended (true) or reopened (false) the session. */
    onSessionEnded: (ended: boolean) => void = () => undefined,
  ) {
    this.text = this.doc.getText("code");
    this.meta = this.doc.getMap("meta");
    this.runs = this.doc.getArray("runs");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.provider = new WebsocketProvider(`${scheme}//${location.host}${live.path}`, live.room, this.doc, {
      params: { token },
      // Every change goes through the server, which enforces roles; tabs must not sync around it.
      disableBc: true,
      maxBackoffTime: 2500,
      // Rate limits and slow-reader drops pass; other 44xx closes (bad token, unknown session, an update too
      // large to accept) would only repeat, so the page handles them instead of retrying forever.
      shouldReconnect: (event) => TRANSIENT.has(event.code) || event.code < 4400 || event.code > 4499,
    });
    // Auth messages (type 2): the owner's end and reopen. y-websocket's own handler only logs "permission denied".
    this.provider.messageHandlers[2] = (_encoder, decoder) => {
      const ended = sessionEndedBy(decoder.arr, decoder.pos);
      decoder.pos = decoder.arr.length; // one message a frame: nothing of it is left for anyone else
      if (ended !== null) onSessionEnded(ended);
    };
    this.awareness = this.provider.awareness;
    this.awareness.setLocalStateField("user", user);
    // Peers write their own awareness state, and the editor's remote-cursor code puts user.color and
    // user.colorLight into style attributes: keep only well-formed colours. Registered before the editor
    // exists, so this listener runs before the editor's.
    this.awareness.on("change", () => {
      for (const state of this.awareness.getStates().values()) {
        const peer = (state as { user?: Record<string, unknown> }).user;
        if (peer && typeof peer === "object") {
          peer.color = safeColor(peer.color);
          peer.colorLight = safeColor(peer.colorLight, `${String(peer.color)}33`);
        }
      }
    });

    this.provider.on("status", ({ status }) => {
      const link: LinkState = status === "connected" ? "connected" : status === "connecting" ? "connecting" : "offline";
      this.update({ link, synced: link === "connected" ? this.status.synced : false });
    });
    this.provider.on("sync", (synced) => {
      if (synced) this.everSynced = true;
      // A completed sync means the server has everything this client had, pending edits included.
      this.update({ synced, pending: synced ? false : this.status.pending });
    });
    this.provider.on("closed", (event) => onClosed(event.code, event.reason));
    this.doc.on("update", (_update: Uint8Array, origin: unknown) => {
      if (origin !== this.provider && !(this.status.link === "connected" && this.status.synced)) {
        this.update({ pending: true });
      }
    });
    // Browsers know when the network is gone well before a WebSocket times out: go offline at once and
    // reconnect as soon as the network is back.
    window.addEventListener("offline", this.onOffline);
    window.addEventListener("online", this.onOnline);
  }

  get hasSynced(): boolean {
    return this.everSynced;
  }

  private onOffline = (): void => {
    this.provider.disconnect();
  };

  private onOnline = (): void => {
    this.provider.connect();
  };

  private update(patch: Partial<CollabStatus>): void {
    this.status = { ...this.status, ...patch };
    for (const listener of this.listeners) listener(this.status);
  }

  onStatus(listener: (s: CollabStatus) => void): void {
    this.listeners.add(listener);
    listener(this.status);
  }

  destroy(): void {
    window.removeEventListener("offline", this.onOffline);
    window.removeEventListener("online", this.onOnline);
    this.provider.destroy();
    this.doc.destroy();
  }
}
