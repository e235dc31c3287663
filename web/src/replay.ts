// A session's history replayed in the page: the original Yjs updates (from the owner's export) applied in order to
// a local document, so playing back costs no request per frame. It keeps, beside the text, who wrote each of its
// characters, by the server's own rule (see src/codeconnect/history/timeline.py): the text an update inserts is
// its client id's owner's (the first author seen sending under it) when the update is under one client id, else its
// sender's. Every `every` changes it keeps a checkpoint, so going back applies at most that many updates.
import * as Y from "yjs";

export interface ReplayChange {
  /** The Yjs update, base64 (as the export carries it). */
  update: string;
  /** The participant who sent it; null for the server's own changes. */
  author: string | null;
}

/** Who wrote which part of the code: (start, end) in UTF-16 units, covering it, in order. */
export interface AuthorSpan {
  start: number;
  end: number;
  author: string | null;
}

export interface Frame {
  index: number;
  code: string;
  language: string | null;
  title: string | null;
  /** The document's `runs` array then; the same array object while it did not change. */
  runs: unknown[];
  authors: AuthorSpan[];
  /** What the change at `index` inserted (ranges in `code`), for the highlight. */
  inserted: { from: number; to: number }[];
  /** The text changes since the frame before, in order (Yjs deltas), when it was the one before them; else null. */
  edits?: TextDelta[] | null;
}

export type TextDelta = { insert?: unknown; delete?: number; retain?: number }[];

interface Checkpoint {
  state: Uint8Array;
  authors: Uint16Array;
  owners: Map<number, number>;
}

const NOBODY = 0;

export function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** The client ids an update writes structs under. */
function clientsOf(update: Uint8Array): Set<number> {
  const clients = new Set<number>();
  try {
    const { structs } = Y.decodeUpdate(update);
    for (const s of structs) clients.add(s.id.client);
  } catch {
    // Not an update we can read: its sender wrote it.
  }
  return clients;
}

export class Replay {
  private doc!: Y.Doc;
  private text!: Y.Text;
  /** The author (index in `people`) of each UTF-16 unit of the text. */
  private authors: number[] = [];
  /** The owner of each Yjs client id: the first author seen sending under it. */
  private owners = new Map<number, number>();
  private readonly people: (string | null)[] = [null];
  private readonly personIndex = new Map<string | null, number>([[null, NOBODY]]);
  private readonly checkpoints = new Map<number, Checkpoint>();
  /** How many changes are applied: the document is right after change `position - 1`. */
  private position = 0;
  private writer = NOBODY;
  private inserted: { from: number; to: number }[] = [];
  private runsCache: unknown[] = [];
  /** The text's deltas since the last frame; null after starting again from a checkpoint. */
  private edits: TextDelta[] | null = null;
  private runsDirty = true;

  constructor(
    private readonly base: readonly string[],
    private readonly changes: readonly ReplayChange[],
    /** Changes between checkpoints: memory (one encoded document each) against the cost of going back. */
    readonly every = Math.max(200, Math.ceil(changes.length / 64)),
  ) {
    this.reset();
  }

  get total(): number {
    return this.changes.length;
  }

  private person(author: string | null): number {
    let index = this.personIndex.get(author);
    if (index === undefined) {
      index = this.people.length;
      this.people.push(author);
      this.personIndex.set(author, index);
    }
    return index;
  }

  private newDoc(): void {
    this.doc?.destroy();
    this.doc = new Y.Doc();
    this.text = this.doc.getText("code");
    this.doc.getMap("meta");
    this.doc.getArray("runs").observe(() => (this.runsDirty = true));
    this.text.observe((event) => {
      this.edits?.push(event.delta as TextDelta);
      let at = 0;
      for (const d of event.delta) {
        if (d.retain !== undefined) at += d.retain;
        else if (d.delete !== undefined) this.authors.splice(at, d.delete);
        else if (typeof d.insert === "string") {
          const n = d.insert.length;
          // Spliced in slices: spreading a long insert (a paste) into arguments would overflow the stack.
          for (let i = 0; i < n; i += 8192) {
            this.authors.splice(at + i, 0, ...new Array<number>(Math.min(8192, n - i)).fill(this.writer));
          }
          this.inserted.push({ from: at, to: at + n });
          at += n;
        }
      }
    });
    this.runsDirty = true;
  }

  private reset(): void {
    this.authors = [];
    this.owners = new Map();
    this.newDoc();
    this.writer = NOBODY;
    for (const part of this.base) Y.applyUpdate(this.doc, fromBase64(part));
    this.position = 0;
    this.edits = null;
  }

  private writerOf(change: ReplayChange, update: Uint8Array): number {
    const sender = this.person(change.author);
    const clients = clientsOf(update);
    if (clients.size !== 1) return sender;
    const [client] = clients as unknown as [number];
    let owner = this.owners.get(client);
    if (owner === undefined) {
      if (change.author === null) return sender;
      owner = sender;
      this.owners.set(client, owner);
    }
    return owner;
  }

  private applyNext(): void {
    const change = this.changes[this.position]!;
    const update = fromBase64(change.update);
    this.writer = this.writerOf(change, update);
    this.inserted = [];
    try {
      Y.applyUpdate(this.doc, update);
    } catch {
      // A damaged update changes nothing here, as on the server.
    }
    this.position += 1;
    if (this.position % this.every === 0 && !this.checkpoints.has(this.position)) {
      this.checkpoints.set(this.position, {
        state: Y.encodeStateAsUpdate(this.doc),
        authors: Uint16Array.from(this.authors),
        owners: new Map(this.owners),
      });
    }
  }

  private restore(position: number): void {
    const checkpoint = this.checkpoints.get(position);
    if (!checkpoint) {
      this.reset();
      return;
    }
    this.newDoc();
    this.writer = NOBODY;
    this.authors = [];
    Y.applyUpdate(this.doc, checkpoint.state);
    // The text observer above filled the authors with nobody: the checkpoint knows better.
    this.authors = Array.from(checkpoint.authors);
    this.owners = new Map(checkpoint.owners);
    this.position = position;
    this.edits = null;
  }

  /** The session right after change ``index`` (0 ≤ index < total). */
  seek(index: number): Frame {
    const target = Math.min(Math.max(index, 0), this.changes.length - 1) + 1;
    if (target <= this.position || target - this.position > this.every) {
      // Back (or far ahead): from the last checkpoint before the change, so that change is applied again and its
      // insertions are known.
      let from = Math.floor((target - 1) / this.every) * this.every;
      while (from > 0 && !this.checkpoints.has(from)) from -= this.every;
      if (from > this.position || target <= this.position) this.restore(from);
    }
    while (this.position < target) this.applyNext();
    return this.frame();
  }

  private frame(): Frame {
    const meta = this.doc.getMap("meta");
    if (this.runsDirty) {
      this.runsCache = this.doc.getArray("runs").toJSON();
      this.runsDirty = false;
    }
    const language = meta.get("language");
    const title = meta.get("title");
    const edits = this.edits;
    this.edits = [];
    return {
      edits,
      index: this.position - 1,
      code: this.text.toString(),
      language: typeof language === "string" ? language : null,
      title: typeof title === "string" ? title : null,
      runs: this.runsCache,
      authors: spans(this.authors, this.people),
      inserted: this.inserted,
    };
  }
}

/** Runs of one author over the text. */
export function spans(authors: ArrayLike<number>, people: readonly (string | null)[]): AuthorSpan[] {
  const out: AuthorSpan[] = [];
  let start = 0;
  for (let i = 1; i <= authors.length; i++) {
    if (i === authors.length || authors[i] !== authors[start]) {
      out.push({ start, end: i, author: people[authors[start]!] ?? null });
      start = i;
    }
  }
  return out;
}
