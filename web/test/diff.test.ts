import { describe, expect, it } from "vitest";
import { applyChanges, minimalChanges } from "../src/format/diff";

// A small seeded generator: the same cases on every run.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function mutate(text: string, next: () => number): string {
  const alphabet = ["a", "b", " ", "\n", "é", "😀", "{", "}"];
  const chars = Array.from(text);
  const edits = Math.floor(next() * 6);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(next() * (chars.length + 1));
    if (next() < 0.5 && chars.length) chars.splice(at, 1 + Math.floor(next() * 3));
    else chars.splice(at, 0, alphabet[Math.floor(next() * alphabet.length)] ?? "a");
  }
  return chars.join("");
}

describe("minimalChanges", () => {
  it("turns the old text into the new one, for any pair", () => {
    const next = rng(7);
    for (let i = 0; i < 500; i++) {
      const before = mutate("def f(x):\n    return x\n", next);
      const after = mutate(before, next);
      expect(applyChanges(before, minimalChanges(before, after))).toBe(after);
    }
  });
  it("changes nothing when nothing changed", () => {
    expect(minimalChanges("same\n", "same\n")).toEqual([]);
  });
});
