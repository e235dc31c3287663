"""The languages a session can hold: canonical names, accepted aliases, file extensions, starter code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

LanguageName = Literal["python", "javascript", "typescript", "java", "cpp"]
LANGUAGES: tuple[LanguageName, ...] = get_args(LanguageName)


@dataclass(frozen=True, slots=True)
class Language:
    name: LanguageName
    label: str
    extension: str
    aliases: tuple[str, ...]
    starter: str


_TABLE = (
    Language("python", "Python", "py", ("py", "python3"), 'print("Hello, world!")\n'),
    Language("javascript", "JavaScript", "js", ("js", "node"), 'console.log("Hello, world!");\n'),
    Language(
        "typescript",
        "TypeScript",
        "ts",
        ("ts",),
        'const greeting: string = "Hello, world!";\nconsole.log(greeting);\n',
    ),
    Language(
        "java",
        "Java",
        "java",
        (),
        "public class Main {\n    public static void main(String[] args) {\n"
        '        System.out.println("Hello, world!");\n    }\n}\n',
    ),
    Language(
        "cpp",
        "C++",
        "cpp",
        ("c++", "cxx"),
        '#include <iostream>\n\nint main() {\n    std::cout << "Hello, world!" << std::endl;\n'
        "    return 0;\n}\n",
    ),
)

BY_NAME: dict[str, Language] = {lang.name: lang for lang in _TABLE}
_LOOKUP: dict[str, LanguageName] = {key: lang.name for lang in _TABLE for key in (lang.name, *lang.aliases)}


def normalize_language(value: str) -> LanguageName | None:
    """The canonical name for ``value`` (any case, aliases allowed), or None if it is not a language."""
    return _LOOKUP.get(value.lower())


def _case_insensitive(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# JSON Schema patterns cannot carry flags, so the schema spells case-insensitivity out letter by letter:
# clients and generated tests then know exactly which spellings are accepted.
LANGUAGE_PATTERN = (
    "^(" + "|".join(_case_insensitive(k) for k in sorted(_LOOKUP, key=len, reverse=True)) + ")$"
)


def get_language(name: LanguageName) -> Language:
    return BY_NAME[name]
