import { describe, expect, it } from "vitest";
import { fileName, slug } from "../src/download";

describe("download names", () => {
  it("keeps letters and digits of any script and joins the rest with one hyphen", () => {
    expect(slug("Two-sum warm-up!")).toBe("two-sum-warm-up");
    expect(slug("Ἀλγόριθμοι και δομές")).toBe("ἀλγόριθμοι-και-δομές");
    expect(slug("面接 問題 1")).toBe("面接-問題-1");
  });

  it("never lets a path through, and names an empty title main", () => {
    expect(slug("../../etc/passwd")).toBe("etc-passwd");
    expect(slug("  ///  ")).toBe("main");
    expect(slug("")).toBe("main");
  });

  it("cuts long titles at 60 characters without a trailing hyphen", () => {
    const name = slug(`${"a".repeat(59)} b c`);
    expect(Array.from(name).length).toBeLessThanOrEqual(60);
    expect(name.endsWith("-")).toBe(false);
  });

  it("gives Java's public class its file, the others the title and their extension", () => {
    expect(fileName("java", "Anything")).toBe("Main.java");
    expect(fileName("python", "Two sum")).toBe("two-sum.py");
    expect(fileName("typescript", "Two sum")).toBe("two-sum.ts");
  });
});
