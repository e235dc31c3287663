import { describe, expect, it } from "vitest";
import { duration, IDLE_GAP_KEPT_MS, indexAt, indexAtX, Player, playClock, step, timeAtX, xOf } from "../src/timeline";

// Five changes: two quick ones, a ten-second pause, two more.
const times = [1_000, 1_500, 2_000, 12_000, 12_250];

describe("playClock", () => {
  it("counts from the first change in real time", () => {
    const clock = playClock(times, false);
    expect(Array.from(clock.at)).toEqual([0, 500, 1000, 11_000, 11_250]);
    expect(clock.length).toBe(11_250);
  });

  it("shortens idle gaps when they are skipped", () => {
    const clock = playClock(times, true);
    expect(Array.from(clock.at)).toEqual([0, 500, 1000, 1000 + IDLE_GAP_KEPT_MS, 1250 + IDLE_GAP_KEPT_MS]);
  });

  it("keeps pauses up to the gap", () => {
    expect(Array.from(playClock([0, 3000, 6001], true, 3000, 500).at)).toEqual([0, 3000, 3500]);
  });

  it("treats a time out of order as no pause", () => {
    expect(Array.from(playClock([5000, 4000, 4500], false).at)).toEqual([0, 0, 500]);
  });

  it("is empty without changes", () => {
    expect(playClock([], true).length).toBe(0);
    expect(indexAt(playClock([], true), 10)).toBe(-1);
  });
});

describe("indexAt", () => {
  const clock = playClock(times, false);
  it("finds the last change at or before a time", () => {
    expect(indexAt(clock, -5)).toBe(0);
    expect(indexAt(clock, 0)).toBe(0);
    expect(indexAt(clock, 499)).toBe(0);
    expect(indexAt(clock, 500)).toBe(1);
    expect(indexAt(clock, 10_999)).toBe(2);
    expect(indexAt(clock, 11_000)).toBe(3);
    expect(indexAt(clock, 1e9)).toBe(4);
  });

  it("takes the last of changes at the same time", () => {
    expect(indexAt(playClock([0, 100, 100, 100, 200], false), 100)).toBe(3);
  });
});

describe("the bar", () => {
  const clock = playClock(times, false);
  it("maps times to x and back", () => {
    expect(xOf(clock, 0, 900)).toBe(0);
    expect(xOf(clock, 11_250, 900)).toBe(900);
    expect(xOf(clock, 5_625, 900)).toBe(450);
    expect(timeAtX(clock, 450, 900)).toBe(5_625);
    expect(xOf(clock, 99_999, 900)).toBe(900);
    expect(timeAtX(clock, -20, 900)).toBe(0);
  });

  it("picks the nearest change to a point of the bar", () => {
    expect(indexAtX(clock, 0, 1125)).toBe(0); // 10 ms a pixel
    expect(indexAtX(clock, 30, 1125)).toBe(1); // 300 ms: nearer 500 than 0
    expect(indexAtX(clock, 20, 1125)).toBe(0);
    expect(indexAtX(clock, 600, 1125)).toBe(2); // 6 s: nearer 1 s than 11 s
    expect(indexAtX(clock, 1125, 1125)).toBe(4);
  });

  it("puts a play of one instant at the left", () => {
    const one = playClock([5], false);
    expect(xOf(one, 0, 100)).toBe(0);
    expect(indexAtX(one, 50, 100)).toBe(0);
  });
});

describe("step", () => {
  it("moves by changes within the history", () => {
    expect(step(2, 1, 5)).toBe(3);
    expect(step(4, 1, 5)).toBe(4);
    expect(step(0, -1, 5)).toBe(0);
    expect(step(3, -10, 5)).toBe(0);
    expect(step(0, 1, 0)).toBe(-1);
  });
});

describe("Player", () => {
  const clock = playClock(times, false);
  it("runs the clock at its speed from where it was", () => {
    const player = new Player(clock);
    player.play(1000);
    expect(player.time(1500)).toBe(500);
    player.speed(1500, 16);
    expect(player.time(1600)).toBe(500 + 1600);
    player.pause(1600);
    expect(player.time(9999)).toBe(2100);
    expect(player.playing).toBe(false);
  });

  it("stops at the end, and playing again starts over", () => {
    const player = new Player(clock);
    player.speed(0, 8);
    player.play(0);
    expect(player.ended(1000)).toBe(false);
    expect(player.time(2000)).toBe(11_250);
    expect(player.ended(2000)).toBe(true);
    player.pause(2000);
    player.play(3000);
    expect(player.time(3000)).toBe(0);
  });

  it("seeks while playing and keeps playing from there", () => {
    const player = new Player(clock);
    player.play(0);
    player.seek(100, 11_000);
    expect(player.time(200)).toBe(11_100);
  });

  it("keeps its change when the clock changes", () => {
    const player = new Player(clock);
    player.reclock(0, playClock(times, true), 3);
    expect(player.time(0)).toBe(1000 + IDLE_GAP_KEPT_MS);
  });
});

describe("duration", () => {
  it("reads as minutes and seconds, hours when there are some", () => {
    expect(duration(0)).toBe("0:00");
    expect(duration(42_900)).toBe("0:42");
    expect(duration(62_000)).toBe("1:02");
    expect(duration(3_723_000)).toBe("1:02:03");
  });
});
