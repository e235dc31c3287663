// Downloading the pad's code as a file named after the session.
import { languageInfo, type Language } from "./languages";
import { h } from "./ui/dom";

/** A file name from the title: letters and digits of any script kept (a title in Greek or Japanese stays
 * readable), everything else, path separators included, becomes one hyphen. */
export function slug(title: string): string {
  const words = title.normalize("NFC").toLowerCase().replace(/[^\p{L}\p{M}\p{N}]+/gu, "-");
  return Array.from(words.replace(/^-|-$/g, "")).slice(0, 60).join("").replace(/-$/, "") || "main";
}

/** The file a download of ``language`` code gets: Java's public class must live in Main.java. */
export function fileName(language: Language, title: string): string {
  const info = languageInfo(language);
  return info.name === "java" ? "Main.java" : `${slug(title)}.${info.extension}`;
}

export function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
