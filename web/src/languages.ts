// The five session languages, as the server names them, with what the page needs to know about each.
export type Language = "python" | "javascript" | "typescript" | "java" | "cpp";

export interface LanguageInfo {
  name: Language;
  label: string;
  extension: string;
  /** Where a run happens when the server does not run code. */
  browserRunner: "python" | "javascript" | "typescript" | null;
  starter: string;
}

export const LANGUAGES: readonly LanguageInfo[] = [
  { name: "python", label: "Python", extension: "py", browserRunner: "python", starter: 'print("Hello, world!")\n' },
  {
    name: "javascript",
    label: "JavaScript",
    extension: "js",
    browserRunner: "javascript",
    starter: 'console.log("Hello, world!");\n',
  },
  {
    name: "typescript",
    label: "TypeScript",
    extension: "ts",
    browserRunner: "typescript",
    starter: 'const greeting: string = "Hello, world!";\nconsole.log(greeting);\n',
  },
  {
    name: "java",
    label: "Java",
    extension: "java",
    browserRunner: null,
    starter:
      'public class Main {\n    public static void main(String[] args) {\n        System.out.println("Hello, world!");\n    }\n}\n',
  },
  {
    name: "cpp",
    label: "C++",
    extension: "cpp",
    browserRunner: null,
    starter:
      '#include <iostream>\n\nint main() {\n    std::cout << "Hello, world!" << std::endl;\n    return 0;\n}\n',
  },
];

export function languageInfo(name: string): LanguageInfo {
  return LANGUAGES.find((l) => l.name === name) ?? (LANGUAGES[0] as LanguageInfo);
}

export function isLanguage(name: unknown): name is Language {
  return typeof name === "string" && LANGUAGES.some((l) => l.name === name);
}
