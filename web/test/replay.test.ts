import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { Replay, spans, type ReplayChange } from "../src/replay";

const b64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));

/** A scripted session: each step is one person's edit on their own document, recorded as the update it sent. */
function record(
  steps: [string, (text: Y.Text, doc: Y.Doc) => void][],
  server = new Y.Doc(),
): { changes: ReplayChange[]; texts: string[]; server: Y.Doc } {
  const docs = new Map<string, Y.Doc>();
  const changes: ReplayChange[] = [];
  const texts: string[] = [];
  for (const [who, edit] of steps) {
    let doc = docs.get(who);
    if (!doc) {
      doc = new Y.Doc();
      docs.set(who, doc);
    }
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(server));
    const before = Y.encodeStateVector(doc);
    edit(doc.getText("code"), doc);
    const update = Y.encodeStateAsUpdate(doc, before);
    Y.applyUpdate(server, update);
    changes.push({ update: b64(update), author: who === "server" ? null : who });
    texts.push(server.getText("code").toString());
  }
  return { changes, texts, server };
}

describe("Replay", () => {
  const steps: [string, (text: Y.Text, doc: Y.Doc) => void][] = [];
  for (let i = 0; i < 30; i++) {
    steps.push(["ada", (t) => t.insert(t.length, `a${i} `)]);
    steps.push(["bob", (t) => t.insert(0, "b")]);
    if (i % 7 === 3) steps.push(["bob", (t) => t.delete(0, 3)]);
    if (i === 10) steps.push(["server", (_t, d) => d.getMap("meta").set("language", "java")]);
    if (i === 20) steps.push(["server", (_t, d) => d.getArray("runs").push([{ id: "r1", stdout: "hi" }])]);
  }
  const { changes, texts } = record(steps);

  it("shows the text after every change, going forward, back and far", () => {
    const replay = new Replay([], changes, 8);
    for (const i of [0, 1, 2, 5, 40, 39, 3, 60, 17, 16, 15, changes.length - 1, 0]) {
      expect(replay.seek(i).code).toBe(texts[i]);
    }
    for (let i = 0; i < changes.length; i++) expect(replay.seek(i).code).toBe(texts[i]);
  });

  it("knows who wrote each character", () => {
    const replay = new Replay([], changes, 8);
    const frame = replay.seek(changes.length - 1);
    for (const span of frame.authors) {
      const part = frame.code.slice(span.start, span.end);
      expect(span.author === "bob" ? /^b+$/.test(part) : /^[a0-9 ]+$/.test(part)).toBe(true);
    }
    expect(frame.authors.at(-1)?.end).toBe(frame.code.length);
    // The same after coming back from a checkpoint.
    replay.seek(3);
    expect(replay.seek(changes.length - 1).authors).toEqual(frame.authors);
  });

  it("tells what the last change inserted, the language and the runs", () => {
    const replay = new Replay([], changes, 8);
    const frame = replay.seek(0);
    expect(frame.inserted).toEqual([{ from: 0, to: 3 }]);
    expect(replay.seek(1).inserted).toEqual([{ from: 0, to: 1 }]);
    expect(replay.seek(changes.length - 1).language).toBe("java");
    expect(replay.seek(changes.length - 1).runs).toEqual([{ id: "r1", stdout: "hi" }]);
    expect(replay.seek(2).language).toBe(null);
    expect(replay.seek(2).runs).toEqual([]);
  });

  it("starts from the base", () => {
    const base = new Y.Doc();
    base.getText("code").insert(0, "start ");
    const server = new Y.Doc();
    Y.applyUpdate(server, Y.encodeStateAsUpdate(base));
    const { changes: more } = record([["ada", (t) => t.insert(0, "x")]], server);
    const replay = new Replay([b64(Y.encodeStateAsUpdate(base))], more);
    expect(replay.seek(0).code).toBe("xstart ");
    expect(replay.seek(0).authors).toEqual([
      { start: 0, end: 1, author: "ada" },
      { start: 1, end: 7, author: null },
    ]);
  });
});

describe("spans", () => {
  it("merges runs of one author", () => {
    expect(spans([1, 1, 2, 0, 0], [null, "a", "b"])).toEqual([
      { start: 0, end: 2, author: "a" },
      { start: 2, end: 3, author: "b" },
      { start: 3, end: 5, author: null },
    ]);
    expect(spans([], [null])).toEqual([]);
  });
});
