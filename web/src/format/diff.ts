// The smallest edit that turns one text into another, as CodeMirror changes. Formatting touches few lines of a
// typical program: sending only those keeps the Yjs update small and leaves collaborators' cursors (relative
// positions into unchanged text) where they were, instead of collapsing them to one end of a whole-text swap.

export interface TextChange {
  from: number;
  to: number;
  insert: string;
}

/** Past this many line edits the exact diff costs more (time, and memory for its trace) than it saves: fall back to
 * one prefix/suffix change. */
const MAX_EDITS = 1000;

/** One change between the common prefix and the common suffix of the two strings (none when equal). */
function trimmed(a: string, b: string, offset: number): TextChange[] {
  let start = 0;
  const min = Math.min(a.length, b.length);
  while (start < min && a.charCodeAt(start) === b.charCodeAt(start)) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a.charCodeAt(endA - 1) === b.charCodeAt(endB - 1)) {
    endA--;
    endB--;
  }
  // Never split a surrogate pair: both halves must go together.
  if (start > 0 && isHighSurrogate(a.charCodeAt(start - 1))) start--;
  if (endA < a.length && isLowSurrogate(a.charCodeAt(endA)) && endA > start) {
    endA++;
    endB++;
  }
  if (start === endA && start === endB) return [];
  return [{ from: offset + start, to: offset + endA, insert: b.slice(start, endB) }];
}

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;
const isLowSurrogate = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff;

/** Lines with their line breaks, so that joining them gives the text back. */
function lines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/**
 * Myers' O(ND) diff over lines; returns pairs of [index in a, index in b] of the lines kept, in order, or null
 * when the texts differ in more than MAX_EDITS lines.
 */
function keptLines(linesA: string[], linesB: string[]): [number, number][] | null {
  // Lines that open and close both texts are kept as they are; the diff runs on what lies between them.
  let head = 0;
  while (head < linesA.length && head < linesB.length && linesA[head] === linesB[head]) head++;
  let tail = 0;
  while (
    tail < linesA.length - head &&
    tail < linesB.length - head &&
    linesA[linesA.length - 1 - tail] === linesB[linesB.length - 1 - tail]
  ) {
    tail++;
  }
  // Numbers instead of strings: the search compares lines many times over.
  const ids = new Map<string, number>();
  const number = (line: string): number => {
    let id = ids.get(line);
    if (id === undefined) ids.set(line, (id = ids.size));
    return id;
  };
  const a = Int32Array.from(linesA.slice(head, linesA.length - tail), number);
  const b = Int32Array.from(linesB.slice(head, linesB.length - tail), number);
  const middle = myers(a, b);
  if (middle === null) return null;
  const kept: [number, number][] = [];
  for (let i = 0; i < head; i++) kept.push([i, i]);
  for (const [x, y] of middle) kept.push([x + head, y + head]);
  for (let i = tail; i > 0; i--) kept.push([linesA.length - i, linesB.length - i]);
  return kept;
}

function myers(a: Int32Array, b: Int32Array): [number, number][] | null {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_EDITS);
  const offset = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    const next = v.slice();
    for (let k = -d; k <= d; k += 2) {
      let x: number;
      if (k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!)) x = v[offset + k + 1]!;
      else x = v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      next[offset + k] = x;
      if (x >= n && y >= m) {
        trace.push(next);
        return backtrack(trace, a, b, offset, d, k);
      }
    }
    v = next;
  }
  return null;
}

function backtrack(trace: Int32Array[], a: Int32Array, b: Int32Array, offset: number, dEnd: number, kEnd: number): [number, number][] {
  const kept: [number, number][] = [];
  let x = a.length;
  let y = b.length;
  let k = kEnd;
  for (let d = dEnd; d >= 0; d--) {
    const v = trace[d]!;
    let prevK: number;
    if (d === 0) prevK = 0;
    else if (k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!)) prevK = k + 1;
    else prevK = k - 1;
    const prevX = d === 0 ? 0 : v[offset + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      kept.push([x, y]);
    }
    if (d === 0) break;
    x = prevX;
    y = prevY;
    k = prevK;
  }
  return kept.reverse();
}

/** The changes (in positions of ``before``, non-overlapping, in order) that turn ``before`` into ``after``. */
export function minimalChanges(before: string, after: string): TextChange[] {
  if (before === after) return [];
  const a = lines(before);
  const b = lines(after);
  const kept = keptLines(a, b);
  if (kept === null) return trimmed(before, after, 0);
  const changes: TextChange[] = [];
  let ai = 0;
  let bi = 0;
  let posA = 0;
  const flush = (toA: number, toB: number): void => {
    if (toA === ai && toB === bi) return;
    const oldText = a.slice(ai, toA).join("");
    const newText = b.slice(bi, toB).join("");
    changes.push(...trimmed(oldText, newText, posA));
    posA += oldText.length;
    ai = toA;
    bi = toB;
  };
  for (const [ka, kb] of kept) {
    flush(ka, kb);
    posA += a[ka]!.length;
    ai = ka + 1;
    bi = kb + 1;
  }
  flush(a.length, b.length);
  return changes;
}

/** Apply ``changes`` (as returned above) to ``text``: what CodeMirror does, for checking. */
export function applyChanges(text: string, changes: TextChange[]): string {
  let out = "";
  let pos = 0;
  for (const c of changes) {
    out += text.slice(pos, c.from) + c.insert;
    pos = c.to;
  }
  return out + text.slice(pos);
}
