"""The toolchain table: for each language, which tools it needs, how it is compiled and how it runs.

Commands here are argv lists as seen *inside* the sandbox (``/work`` is the run's private directory,
``/opt/ts`` the read-only TypeScript stripper, bound from the server's own copy: see ``staging.py``). Tools are
looked up on the host in ``/usr/bin:/bin`` only, because only ``/usr`` is bound into the sandbox (``/usr/local``
is hidden).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from codeconnect.config import Settings
from codeconnect.languages import LANGUAGES, LanguageName

SANDBOX_PATH = "/usr/bin:/bin"
TS_MOUNT = "/opt/ts"
DEFAULT_TS_DIR = Path(__file__).parent / "ts"

# Measured: the JVM starts under RLIMIT_AS >= 640 MB only with these (the same go to javac through -J).
JVM_FLAGS = (
    "-XX:+UseSerialGC",
    "-XX:ReservedCodeCacheSize=16m",
    "-XX:CompressedClassSpaceSize=32m",
    "-XX:MaxMetaspaceSize=64m",
    "-Xss512k",
    "-XX:TieredStopAtLevel=1",
    "-Xmx256m",
    # No shared-memory perf file in /tmp: the work directory stays the program's own.
    "-XX:-UsePerfData",
)

_JAVA_PUBLIC_CLASS = re.compile(
    r"\bpublic\s+(?:(?:final|abstract|sealed|strictfp)\s+)*class\s+([A-Za-z_$][\w$]*)"
)
_JAVA_ANY_CLASS = re.compile(r"\bclass\s+([A-Za-z_$][\w$]*)")
_JAVA_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*)\s*;", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Step:
    """One command of a run with the limits it gets."""

    argv: tuple[str, ...]
    cpu_seconds: int
    wall_seconds: float
    memory_mb: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What the sandbox has to do for one program: files to create in /work, an optional compile, the run."""

    files: dict[str, bytes]
    run: Step
    compile: Step | None = None
    env: dict[str, str] = field(default_factory=dict)
    ro_binds: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Availability:
    language: LanguageName
    missing: tuple[str, ...]
    offered: bool = True  # False: the operator left it out of CODECONNECT_EXEC_LANGUAGES

    @property
    def available(self) -> bool:
        return self.offered and not self.missing


def java_class_name(code: str) -> str:
    """The class javac needs the file to be named after: the public class, else the first class, else Main."""
    match = _JAVA_PUBLIC_CLASS.search(code) or _JAVA_ANY_CLASS.search(code)
    return match.group(1) if match else "Main"


class Toolchains:
    """Turns (language, code) into a :class:`Plan`, and says which languages this host can run."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self.ts_dir = Path(settings.exec_typescript_dir) if settings.exec_typescript_dir else DEFAULT_TS_DIR
        # What runs bind at /opt/ts: the copy made at start-up, never the checkout itself once there is one.
        self.ts_bind_source = self.ts_dir

    def typescript_available(self) -> bool:
        return (self.ts_dir / "strip.cjs").is_file() and (self.ts_dir / "node_modules/sucrase/package.json").is_file()

    def _tool_missing(self, name: str) -> bool:
        return shutil.which(name, path=SANDBOX_PATH) is None

    def availability(self, language: LanguageName) -> Availability:
        tools: dict[LanguageName, tuple[str, ...]] = {
            "python": ("python3",),
            "javascript": ("node",),
            "typescript": ("node",),
            "java": ("javac", "java"),
            "cpp": ("g++", "as", "ld"),
        }
        missing = [t for t in tools[language] if self._tool_missing(t)]
        if language == "typescript" and not self.typescript_available():
            missing.append("sucrase")
        offered = not self._s.exec_language_set or language in self._s.exec_language_set
        return Availability(language, tuple(missing), offered)

    def all_availability(self) -> list[Availability]:
        return [self.availability(lang) for lang in LANGUAGES]

    def plan(self, language: LanguageName, code: str) -> Plan:
        s = self._s
        source = code.encode("utf-8", "surrogatepass")

        def run_step(argv: tuple[str, ...], memory_mb: int) -> Step:
            return Step(argv, s.exec_cpu_seconds, s.exec_wall_seconds, memory_mb)

        def compile_step(argv: tuple[str, ...], memory_mb: int) -> Step:
            return Step(argv, s.exec_compile_cpu_seconds, s.exec_compile_wall_seconds, memory_mb)

        # V8 keeps its heap well under the address-space limit so a hog ends with a clean heap-OOM message.
        node_heap = f"--max-old-space-size={max(64, s.exec_memory_mb // 2)}"
        if language == "python":
            return Plan(
                {"main.py": source},
                run_step(("python3", "-u", "main.py"), s.exec_memory_mb),
                env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
            )
        if language == "javascript":
            return Plan({"main.js": source}, run_step(("node", node_heap, "main.js"), s.exec_node_memory_mb))
        if language == "typescript":
            return Plan(
                {"main.ts": source},
                run_step(("node", node_heap, "main.js"), s.exec_node_memory_mb),
                compile=compile_step(
                    ("node", f"{TS_MOUNT}/strip.cjs", "main.ts", "main.js"), s.exec_node_memory_mb
                ),
                ro_binds=((str(self.ts_bind_source), TS_MOUNT),),
            )
        if language == "java":
            name = java_class_name(code)
            package = _JAVA_PACKAGE.search(code)
            main_class = "".join(package.group(1).split()) + "." + name if package else name
            return Plan(
                {f"{name}.java": source},
                run_step(("java", *JVM_FLAGS, "-cp", "/work", main_class), s.exec_jvm_memory_mb),
                compile=compile_step(
                    (
                        "javac",
                        *(f"-J{f}" for f in JVM_FLAGS),
                        "-encoding",
                        "UTF-8",
                        "-d",
                        "/work",
                        f"{name}.java",
                    ),
                    s.exec_jvm_memory_mb,
                ),
            )
        if language == "cpp":
            return Plan(
                {"main.cpp": source},
                run_step(("./main",), s.exec_memory_mb),
                compile=compile_step(
                    ("g++", "-O2", "-std=c++17", "-pipe", "-o", "main", "main.cpp"), s.exec_compile_memory_mb
                ),
            )
        raise ValueError(language)  # pragma: no cover - LanguageName is exhaustive
