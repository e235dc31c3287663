"""Programs in all five languages, in the real sandbox: output, stdin, compile errors, runtime errors."""

from __future__ import annotations

import signal

import pytest
from httpx import AsyncClient as Client

from codeconnect.languages import LanguageName
from tests.conftest import ServerFactory
from tests.execution.conftest import SANDBOX_LIMITS, require_language, require_sandbox, run

pytestmark = pytest.mark.sandbox

HELLO = {
    "python": 'print("Hello, world!")\n',
    "javascript": 'console.log("Hello, world!");\n',
    "typescript": 'const greeting: string = "Hello, world!";\nconsole.log(greeting);\n',
    "java": "public class Main {\n    public static void main(String[] args) {\n"
    '        System.out.println("Hello, world!");\n    }\n}\n',
    "cpp": '#include <iostream>\nint main() {\n    std::cout << "Hello, world!" << std::endl;\n}\n',
}

ECHO_STDIN = {
    "python": "import sys\nfor line in sys.stdin:\n    print(line.strip().upper())\n",
    "javascript": 'process.stdin.on("data", d => process.stdout.write(d.toString().toUpperCase()));\n',
    "typescript": 'process.stdin.on("data", (d: Buffer) => process.stdout.write(d.toString().toUpperCase()));\n',
    "java": "import java.util.Scanner;\npublic class Echo {\n  public static void main(String[] a) {\n"
    "    Scanner s = new Scanner(System.in);\n    while (s.hasNextLine()) System.out.println("
    "s.nextLine().toUpperCase());\n  }\n}\n",
    "cpp": "#include <iostream>\n#include <string>\n#include <cctype>\nint main() {\n  std::string l;\n"
    "  while (std::getline(std::cin, l)) {\n    for (auto& c : l) c = std::toupper(c);\n"
    "    std::cout << l << '\\n';\n  }\n}\n",
}


@pytest.mark.parametrize("language", list(HELLO))
async def test_hello_world(sandbox_client: Client, language: LanguageName) -> None:
    require_language(language)
    body = await run(sandbox_client, language, HELLO[language])
    assert body["stdout"] == "Hello, world!\n", body
    assert body["exitCode"] == 0
    assert body["signal"] is None
    assert body["timedOut"] is False
    assert body["outputTruncated"] is False
    assert body["stderr"] == ""
    assert body["language"] == language
    assert body["durationMs"] >= 0


@pytest.mark.parametrize("language", list(ECHO_STDIN))
async def test_stdin(sandbox_client: Client, language: LanguageName) -> None:
    require_language(language)
    body = await run(sandbox_client, language, ECHO_STDIN[language], stdin="abc\nxyz\n")
    assert body["stdout"] == "ABC\nXYZ\n", body
    assert body["exitCode"] == 0


async def test_language_aliases(sandbox_client: Client) -> None:
    body = await run(sandbox_client, "PY", 'print("alias")')
    assert body["language"] == "python"
    assert body["stdout"] == "alias\n"


@pytest.mark.parametrize(
    ("language", "code", "message"),
    [
        ("cpp", "int main() { return undefined_name; }\n", "undefined_name"),
        ("java", "public class Main { public static void main(String[] a) { int x = ; } }\n", "error"),
        ("typescript", "const x: number = ;\n", "main.ts"),
    ],
)
async def test_compile_error_is_a_normal_answer(
    sandbox_client: Client, language: LanguageName, code: str, message: str
) -> None:
    require_language(language)
    body = await run(sandbox_client, language, code)
    assert body["exitCode"] not in (0, None), body
    assert message in body["compileOutput"]
    assert body["stdout"] == ""
    assert body["timedOut"] is False


async def test_compiler_warnings_do_not_stop_the_run(sandbox_client: Client) -> None:
    code = '#include <cstdio>\n#warning careful\nint main() { std::puts("ran"); }\n'
    body = await run(sandbox_client, "cpp", code)
    assert body["exitCode"] == 0
    assert "careful" in body["compileOutput"]
    assert body["stdout"] == "ran\n"


@pytest.mark.parametrize(
    ("language", "code", "stderr_part"),
    [
        ("python", "print('before')\nraise ValueError('boom')\n", "ValueError: boom"),
        ("javascript", "console.log('before');\nthrow new Error('boom');\n", "Error: boom"),
        (
            "typescript",
            "console.log('before');\nconst e: Error = new Error('boom');\nthrow e;",
            "Error: boom",
        ),
        (
            "java",
            'public class Main { public static void main(String[] a) { System.out.println("before");'
            ' throw new IllegalStateException("boom"); } }\n',
            "IllegalStateException: boom",
        ),
    ],
)
async def test_runtime_error(sandbox_client: Client, language: LanguageName, code: str, stderr_part: str) -> None:
    require_language(language)
    body = await run(sandbox_client, language, code)
    assert body["exitCode"] == 1, body
    assert body["stdout"] == "before\n"
    assert stderr_part in body["stderr"]
    assert body["compileOutput"] == ""


async def test_exit_code_and_signal(sandbox_client: Client) -> None:
    body = await run(sandbox_client, "python", "import sys\nsys.exit(3)\n")
    assert body["exitCode"] == 3
    assert body["signal"] is None
    assert body["signalName"] is None
    body = await run(sandbox_client, "cpp", "#include <cstdlib>\nint main() { std::abort(); }\n")
    assert body["exitCode"] is None
    assert body["signal"] == signal.SIGABRT
    assert body["signalName"] == "SIGABRT"
    body = await run(sandbox_client, "cpp", "int main() { volatile int* p = nullptr; return *p; }\n")
    assert body["signal"] == signal.SIGSEGV
    assert body["signalName"] == "SIGSEGV"


async def test_java_class_named_after_the_public_class(sandbox_client: Client) -> None:
    code = (
        'class Helper { static String hi() { return "hi"; } }\n'
        "public class Solution { public static void main(String[] a) { System.out.println(Helper.hi()); } }\n"
    )
    body = await run(sandbox_client, "java", code)
    assert body["stdout"] == "hi\n", body


async def test_unicode_round_trip(sandbox_client: Client) -> None:
    body = await run(sandbox_client, "python", "print(input()[::-1])\n", stdin="héllo ✓\n")
    assert body["stdout"] == "✓ olléh\n"


async def test_languages_all_available(sandbox_client: Client) -> None:
    body = (await sandbox_client.get("/v1/execute/languages")).json()
    assert body["enabled"] is True
    assert {e["language"]: (e["available"], e["missing"]) for e in body["languages"]} == {
        lang: (True, []) for lang in HELLO
    }


async def test_compile_step_has_its_own_limits(server_factory: ServerFactory) -> None:
    require_sandbox()
    limits = {**SANDBOX_LIMITS, "exec_compile_cpu_seconds": 1, "exec_compile_wall_seconds": 5.0}
    server = await server_factory(**limits)
    # Thousands of functions at -O2 take g++ well over a CPU second.
    code = "".join(f"int f{i}(int x) {{ return x * {i} + (x > 0 ? f{i - 1}(x - 1) : 0); }}\n" for i in range(1, 6000))
    code = "int f0(int x) { return x; }\n" + code + "int main() { return f5999(3) & 1; }\n"
    async with Client(base_url=server.base_url, timeout=60) as client:
        body = await run(client, "cpp", code)
    assert body["timedOut"] is True, {k: v for k, v in body.items() if k != "compileOutput"}
    # Killed by the CPU limit (g++ then reports its cc1plus as exit 4) or, on a loaded machine, by the wall clock.
    assert body["exitCode"] != 0
    assert body["stdout"] == ""


async def test_java_in_a_package(sandbox_client: Client) -> None:
    code = (
        "package demo.app;\n\n"
        'public class Main { public static void main(String[] a) { System.out.println("pkg"); } }\n'
    )
    body = await run(sandbox_client, "java", code)
    assert body["stdout"] == "pkg\n", body
