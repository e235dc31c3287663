// The playback timeline's arithmetic, without the DOM: where each change sits on the play clock (idle gaps
// compressed or not), where that is on the bar, which change a moment or a point of the bar falls on, how the
// play clock moves at a speed, and stepping by change.

/** Play speeds offered, in times real time. */
export const SPEEDS = [1, 2, 4, 8, 16] as const;
export type Speed = (typeof SPEEDS)[number];

/** A pause between two changes longer than this (ms) is idle when idle gaps are skipped... */
export const IDLE_GAP_MS = 3000;
/** ...and then lasts this long (ms) on the play clock and the bar. */
export const IDLE_GAP_KEPT_MS = 1000;

export interface Clock {
  /** Play-clock time of each change (ms from the first change), never decreasing. */
  readonly at: Float64Array;
  /** Play-clock time of the last change: the length of the play. */
  readonly length: number;
}

/**
 * The play clock of changes received at ``times`` (ms since the epoch, in order): each change's time from the
 * first one, with every pause longer than ``gap`` shortened to ``kept`` when ``skipIdle``. Times out of order (a
 * clock step on the server) count as no pause.
 */
export function playClock(times: readonly number[], skipIdle: boolean, gap = IDLE_GAP_MS, kept = IDLE_GAP_KEPT_MS): Clock {
  const at = new Float64Array(times.length);
  let now = 0;
  for (let i = 1; i < times.length; i++) {
    const pause = Math.max(0, times[i]! - times[i - 1]!);
    now += skipIdle && pause > gap ? kept : pause;
    at[i] = now;
  }
  return { at, length: times.length ? now : 0 };
}

/** The last change at or before play time ``t``: 0 before the first (the first change is the start). */
export function indexAt(clock: Clock, t: number): number {
  const { at } = clock;
  if (at.length === 0) return -1;
  let lo = 0;
  let hi = at.length - 1;
  if (t >= at[hi]!) return hi;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (at[mid]! <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Where play time ``t`` is on a bar ``width`` pixels wide (a play of one instant sits at the left). */
export function xOf(clock: Clock, t: number, width: number): number {
  if (clock.length <= 0) return 0;
  return (Math.min(Math.max(t, 0), clock.length) / clock.length) * width;
}

/** The play time at ``x`` pixels of a bar ``width`` wide. */
export function timeAtX(clock: Clock, x: number, width: number): number {
  if (width <= 0 || clock.length <= 0) return 0;
  return (Math.min(Math.max(x, 0), width) / width) * clock.length;
}

/** The change nearest to ``x`` on the bar: what a click or a drag there picks. */
export function indexAtX(clock: Clock, x: number, width: number): number {
  const t = timeAtX(clock, x, width);
  const i = indexAt(clock, t);
  const next = i + 1;
  if (next < clock.at.length && clock.at[next]! - t < t - clock.at[i]!) return next;
  return i;
}

/** ``index`` moved by ``by`` changes, within the history. */
export function step(index: number, by: number, total: number): number {
  if (total <= 0) return -1;
  return Math.min(Math.max(index + by, 0), total - 1);
}

/**
 * The play clock while playing: started at play time ``from`` at wall time ``since`` (ms, the frame clock), at
 * ``speed`` times real time. The speed can change while playing; the clock keeps its place.
 */
export class Player {
  private from = 0;
  private since = 0;
  private rate: number = 1;
  playing = false;

  constructor(private clock: Clock) {}

  /** Play time at wall time ``now``, never past the end. */
  time(now: number): number {
    if (!this.playing) return this.from;
    return Math.min(this.from + (now - this.since) * this.rate, this.clock.length);
  }

  /** Whether the play reached the last change at wall time ``now``. */
  ended(now: number): boolean {
    return this.time(now) >= this.clock.length;
  }

  play(now: number, from?: number): void {
    // Playing from the end starts over.
    const start = from ?? this.from;
    this.from = start >= this.clock.length ? 0 : start;
    this.since = now;
    this.playing = true;
  }

  pause(now: number): void {
    this.from = this.time(now);
    this.playing = false;
  }

  /** Go to play time ``t`` (a seek), playing on from there when playing. */
  seek(now: number, t: number): void {
    this.from = Math.min(Math.max(t, 0), this.clock.length);
    this.since = now;
  }

  speed(now: number, rate: number): void {
    this.from = this.time(now);
    this.since = now;
    this.rate = rate;
  }

  get speedValue(): number {
    return this.rate;
  }

  /** A new clock (idle gaps skipped or not), the play kept at change ``index``. */
  reclock(now: number, clock: Clock, index: number): void {
    this.clock = clock;
    this.from = index >= 0 && index < clock.at.length ? clock.at[index]! : 0;
    this.since = now;
  }
}

/** "0:42" or "1:02:03": a play time (ms) as a reader of the bar says it. */
export function duration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}
