"""Promises about the code itself: it builds on other packages' public APIs only."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "codeconnect"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_reaches(source: str) -> list[str]:
    """Every place that reaches a private name of another object or module: ``x._y`` (but ``self._y`` and
    ``cls._y``), ``getattr(x, "_y")`` and friends, and imports of ``_private`` modules or names."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
            "getattr", "setattr", "hasattr", "delattr"
        ):
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                if _private(node.args[1].value):
                    found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            if any(_private(part) for part in module.split(".")) or any(_private(a.name) for a in node.names):
                found.append(f"{node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(_private(part) for part in alias.name.split(".")):
                    found.append(f"{node.lineno}: import {alias.name}")
    return found


def test_the_check_finds_what_it_looks_for() -> None:
    sample = (
        "import a._b\nfrom c import _d\nfrom e._f import g\n"
        "x = obj._hidden\ny = getattr(obj, '_hidden')\nz = self._mine\nw = obj.__class__\n"
    )
    assert [line.split(":")[0] for line in private_reaches(sample)] == ["1", "2", "3", "4", "5"]


def test_no_private_attribute_of_another_object_or_package_is_reached() -> None:
    found = [f"{path.relative_to(SRC)}:{where}" for path in sorted(SRC.rglob("*.py"))
             for where in private_reaches(path.read_text())]
    assert not found, "private names reached from outside their object:\n" + "\n".join(found)


def _module_of(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_cycles(sources: dict[str, str]) -> list[list[str]]:
    """The cycles of imports among ``sources`` (module name -> source), counting every import: at module level,
    under ``TYPE_CHECKING`` and inside functions alike (a lazy import hides a cycle, it does not remove it)."""
    graph: dict[str, set[str]] = {}
    for module, source in sources.items():
        targets = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(source)):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            targets.update(n for n in names if n in sources and n != module)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_the_cycle_check_finds_a_cycle() -> None:
    assert import_cycles({"a": "import b", "b": "from a import x", "c": "import a"}) == [["a", "b", "a"]]
    assert import_cycles({"a": "if TYPE_CHECKING:\n    import b", "b": "def f():\n    import a"}) == [["a", "b", "a"]]
    assert import_cycles({"a": "import b", "b": "import c", "c": ""}) == []


def test_no_module_of_the_package_imports_itself_through_others() -> None:
    sources = {_module_of(p): p.read_text() for p in SRC.rglob("*.py")}
    assert import_cycles(sources) == []


# The real-time core: bytes in, bytes out. It knows nothing of HTTP, SQL or Redis; those reach it through the
# protocols it defines (Channel, UpdateStore, Fanout), implemented elsewhere and chosen when the app is wired.
CORE = ("room", "awareness", "updates", "protocol", "document", "cluster", "records", "auth", "tally")
OUTSIDE = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "redis", "fastapi", "starlette", "uvicorn", "websockets")


def test_the_live_core_imports_no_transport_and_no_store() -> None:
    sources = {f"codeconnect.collab.{m}": (SRC / "collab" / f"{m}.py").read_text() for m in CORE}
    for name in CORE:
        tree = ast.parse(sources[f"codeconnect.collab.{name}"])
        for node in ast.walk(tree):
            modules: list[str] = []
            if isinstance(node, ast.ImportFrom):
                # `from codeconnect.collab import protocol` names the module it imports
                package = node.module == "codeconnect.collab"
                modules = [f"{node.module}.{a.name}" for a in node.names] if package else [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            for module in modules:
                top = module.split(".")[0]
                assert top not in OUTSIDE, f"collab/{name}.py imports {module}"
                if module.startswith("codeconnect."):
                    assert module in sources or module in ("codeconnect.titles", "codeconnect.languages"), (
                        f"collab/{name}.py imports {module}, outside the core"
                    )
