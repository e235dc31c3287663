"""Server-side execution: admission, the sandbox run, the per-session switch. No HTTP here."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from codeconnect import metrics
from codeconnect.config import Settings
from codeconnect.errors import (
    Forbidden,
    NotImplementedByServer,
    SessionNotFound,
    TooManyRequests,
    Unauthorized,
)
from codeconnect.execution.pool import PoolBusy, RunnerPool, SlotAbandoned, admitted_runs
from codeconnect.execution.probes import check_languages
from codeconnect.execution.registry import RunRegistry
from codeconnect.execution.sandbox import Outcome, OutputListener, Sandbox, SandboxUnavailable, signal_name
from codeconnect.execution.schemas import (
    ExecuteResult,
    LanguagesResponse,
    LanguageStatus,
    RunOutcome,
    SessionSettings,
    SessionSettingsUpdate,
)
from codeconnect.execution.staging import SandboxFiles
from codeconnect.execution.toolchains import Plan, Step, Toolchains
from codeconnect.languages import LanguageName
from codeconnect.limits import check_text_bytes
from codeconnect.models import SessionRow
from codeconnect.rates import ClientRate, RateExceeded, SharedRate
from codeconnect.security import new_id
from codeconnect.sessions.owner import check_owner
from codeconnect.workspaces.schemas import Execution
from codeconnect.workspaces.service import (
    bearer_token,
    check_language,
    creating_workspace,
    effective_execution,
    policy_of,
)  # fmt: skip

log = logging.getLogger(__name__)


class RunSink(Protocol):
    async def append_run(self, session_id: str, run: dict[str, Any]) -> None: ...

    async def clear_runs(self, session_id: str) -> int: ...


class _LiveDocument(Protocol):
    def text(self) -> str: ...


class _LiveRoom(Protocol):
    @property
    def shared(self) -> _LiveDocument: ...

    def language(self) -> str: ...


class LiveText(Protocol):
    """The live-document layer, as far as runs need it: the text people see right now."""

    def use(self, session_id: str) -> AbstractAsyncContextManager[_LiveRoom]: ...



def execution_disabled() -> Forbidden:
    return Forbidden(
        "Server-side execution is disabled on this deployment (CODECONNECT_EXECUTION=off); "
        "code runs in the browser.",
        code="execution_disabled",
    )


def session_execution_disabled() -> Forbidden:
    return Forbidden(
        "The session's owner has switched server-side execution off for this session.",
        code="execution_disabled_for_session",
    )


async def check_keyed_run(request: Any, settings: Settings, language: str) -> None:
    """A run outside any session, where API keys are required: the key's workspace policy decides."""
    workspace = await creating_workspace(request.app.state.sessionmaker, settings, bearer_token(request.headers))
    policy = await request.app.state.policies.get(workspace)
    allowed = effective_execution(settings, policy)
    if allowed != "sandbox":
        raise execution_not_allowed(allowed)
    check_language(policy, language)


def execution_not_allowed(allowed: str) -> Forbidden:
    where = "nowhere" if allowed == "none" else "only in participants' browsers"
    return Forbidden(
        f"This session's workspace policy runs code {where}, not on the server.", code="execution_not_allowed"
    )


def check_sizes(settings: Settings, code: str, stdin: str) -> None:
    """Byte limits (the request schema can only count characters)."""
    check_text_bytes("The code", code, settings.max_code_bytes, "code_too_large")
    check_text_bytes("stdin", stdin, settings.max_stdin_bytes, "stdin_too_large")


def _text(data: bytes) -> str:
    # Output is cut at a byte limit, maybe inside a UTF-8 sequence; PostgreSQL text cannot hold NUL.
    return data.decode("utf-8", "replace").replace("\x00", "\ufffd")


def classify(
    *, exit_code: int | None, signal: int | None, timed_out: bool, output_truncated: bool, stopped: bool = False
) -> tuple[RunOutcome, str | None]:
    """The run's outcome (and the crash signal's name) from the sandbox's flags: the one place they are read.

    A limit explains the kill that enforced it, so limits come before a signal; the page maps its own runs the
    same way (web/src/runs.ts).
    """
    if stopped:
        return "stopped", None
    if timed_out:
        return "time_limit", None
    if output_truncated:
        return "output_limit", None
    if exit_code is None and signal is not None:
        return "crashed", signal_name(signal)
    return ("ok" if exit_code == 0 else "error"), None


def to_result(language: LanguageName, outcome: Outcome) -> ExecuteResult:
    how, crash_signal = classify(
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        timed_out=outcome.timed_out,
        output_truncated=outcome.output_truncated,
        stopped=outcome.stopped,
    )
    return ExecuteResult(
        stdout=_text(outcome.stdout),
        stderr=_text(outcome.stderr),
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        signal_name=crash_signal,
        timed_out=outcome.timed_out,
        output_truncated=outcome.output_truncated,
        outcome=how,
        compile_output=_text(outcome.compile_output),
        duration_ms=outcome.duration_ms,
        language=language,
    )


class ExecutionService:
    """Owns the sandbox, the pool and the rate limiter of one app."""

    def __init__(self, settings: Settings, shared_rate: SharedRate | None = None) -> None:
        self.settings = settings
        # The run-start rate counted over every process of a cluster (None, or when it cannot answer: here).
        self.shared_rate = shared_rate
        self.enabled = settings.execution == "sandbox"
        self.toolchains = Toolchains(settings)
        self.sandbox = Sandbox(settings)
        self.pool = RunnerPool(admitted_runs(settings), settings.exec_queue_size)
        self.rate = ClientRate(settings.exec_rate_per_minute)
        self.runs = RunRegistry()
        self.files: SandboxFiles | None = None
        # Languages whose tools are present but whose start-up self-test failed, with why.
        self.failed_self_test: dict[LanguageName, str] = {}

    async def _count_start(self, client: str) -> None:
        if self.shared_rate is not None:
            wait = await self.shared_rate(client, self.settings.exec_rate_per_minute)
            if wait is not None:
                if wait > 0:
                    raise RateExceeded(max(1, math.ceil(wait)))
                return
        self.rate.check(client)

    def unavailable_reason(self, language: LanguageName) -> str | None:
        availability = self.toolchains.availability(language)
        if not availability.offered:
            return "not offered by this server (CODECONNECT_EXEC_LANGUAGES)"
        if availability.missing:
            return f"missing {', '.join(availability.missing)}"
        return self.failed_self_test.get(language)

    def languages(self) -> LanguagesResponse:
        statuses = []
        for a in self.toolchains.all_availability():
            reason = self.unavailable_reason(a.language)
            statuses.append(
                LanguageStatus(
                    language=a.language,
                    available=reason is None and self.enabled,
                    missing=list(a.missing),
                    reason=reason,
                )
            )
        return LanguagesResponse(enabled=self.enabled, languages=statuses)

    async def execute(
        self,
        language: LanguageName,
        code: str,
        stdin: str,
        client: str,
        stop: asyncio.Event | None = None,
        *,
        on_start: Callable[[], None] | None = None,
        on_output: OutputListener | None = None,
    ) -> ExecuteResult:
        """Run ``code``; raises 403/429/501 errors for the cases the API documents. Setting ``stop`` ends the run
        at once (its container is killed, or it leaves the queue) with the outcome ``stopped``. ``on_start`` is
        called once the run has its slot (past every refusal); ``on_output`` hears the output as it is made."""
        if not self.enabled:
            raise execution_disabled()
        reason = self.unavailable_reason(language)
        if reason is not None:
            raise NotImplementedByServer(
                f"{language} cannot run on this server: {reason}.", code="language_unavailable"
            )
        try:
            await self._count_start(client)
        except RateExceeded as exc:
            metrics.SANDBOX_REFUSED.labels("rate_limited").inc()
            raise TooManyRequests(
                f"Too many executions from this client; try again in {exc.retry_after} s.",
                code="rate_limited",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        plan = self.toolchains.plan(language, code)
        try:
            async with self.pool.slot(stop) as slot:
                if on_start is not None:
                    on_start()
                started = time.perf_counter()
                outcome = await self.sandbox.run(
                    plan, stdin.encode("utf-8", "surrogatepass"), slot, stop, on_output
                )
                metrics.SANDBOX_DURATION.labels(language).observe(time.perf_counter() - started)
        except SlotAbandoned:
            outcome = Outcome(stopped=True)
        except PoolBusy:
            metrics.SANDBOX_REFUSED.labels("execution_busy").inc()
            retry = max(1, math.ceil(self.settings.exec_wall_seconds / 2))
            raise TooManyRequests(
                "Every execution slot is busy and the queue is full; try again shortly.",
                code="execution_busy",
                headers={"Retry-After": str(retry)},
            ) from None
        result = to_result(language, outcome)
        metrics.SANDBOX_RUNS.labels(language, result.outcome).inc()
        return result

    async def self_test(self) -> None:
        """Copy what runs read into a folder of the server's own, start one container and check what it must
        guarantee, then run a tiny program in every language whose tools are present. Raises
        :class:`SandboxUnavailable` when the sandbox does not hold or no language runs; a language that alone
        fails is unavailable with the reason (:meth:`languages`)."""
        try:
            if self.toolchains.typescript_available():
                self.files = SandboxFiles.create(other_users=self.sandbox.runs_as_other_user())
                try:
                    copy = await asyncio.to_thread(self.files.add_tree, "ts", self.toolchains.ts_dir)
                except OSError as exc:
                    raise SandboxUnavailable(f"cannot copy the TypeScript stripper for runs: {exc}") from exc
                self.toolchains.ts_bind_source = copy
            await check_sandbox(self.settings, self.sandbox)
            self.failed_self_test = await check_languages(self.toolchains, self.sandbox, self.pool.concurrency)
            tried = [a.language for a in self.toolchains.all_availability() if a.available]
            if tried and all(language in self.failed_self_test for language in tried):
                raise SandboxUnavailable(
                    "no language passed its self-test: "
                    + "; ".join(f"{language}: {why}" for language, why in self.failed_self_test.items())
                )
        except SandboxUnavailable:
            await self.close()  # the app will not start: leave no cgroup or copied files behind
            raise

    async def close(self) -> None:
        await self.sandbox.close()
        if self.files is not None:
            self.files.close()
            self.files = None


_SELF_TEST = r"""
set -e
[ "$(id -u)" != 0 ] || { echo "runs as root"; exit 1; }
[ ! -e /etc/shadow ] || { echo "/etc/shadow is visible"; exit 1; }
[ ! -e "$1" ] || { echo "the project folder is visible"; exit 1; }
nets=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')
[ "$nets" = "lo " ] || { echo "network interfaces visible: $nets"; exit 1; }
echo probe > /work/probe && [ "$(cat /tmp/probe)" = probe ]
for d in / /dev /usr/local; do ! : 2>/dev/null > "$d/probe" || { echo "$d is writable"; exit 1; }; done
grep -q ' /dev/shm .*size=' /proc/self/mountinfo || { echo "/dev/shm has no size"; exit 1; }
echo sandbox-ok
"""


async def check_sandbox(settings: Settings, sandbox: Sandbox | None = None) -> str:
    """The start-up self-test of ``CODECONNECT_EXECUTION=sandbox``; returns (and logs) what bounds each run's
    total memory and processes: a cgroup v2 or v1, or the rlimit fallback."""
    for tool in (settings.exec_bwrap_path, "prlimit", "setpriv", "bash", "sh"):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"`{tool}` is not installed (Debian: bubblewrap, util-linux, bash)")
    own = sandbox is None
    sandbox = sandbox or Sandbox(settings)
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # 64 MB of address space: small enough that the rlimit fallback still allows the probe's few processes.
    step = Step(("/usr/bin/bash", "-c", _SELF_TEST, "self-test", project), 5, 20.0, 64)
    try:
        bounds, mechanism = sandbox.bounds(), sandbox.mechanism
        try:
            outcome = await sandbox.run(Plan(files={}, run=step), b"")
        except OSError as exc:
            raise SandboxUnavailable(f"could not start bwrap: {exc}") from exc
    finally:
        if own:
            await sandbox.close()
    if outcome.exit_code != 0 or b"sandbox-ok" not in outcome.stdout:
        why = (outcome.stdout + outcome.stderr).decode("utf-8", "replace").strip()[-500:]
        raise SandboxUnavailable(f"the sandbox self-test failed (exit {outcome.exit_code}): {why}")
    # None: the kernel keeps no peak (cgroup v2 before Linux 5.19); 0: nothing of the run was in its cgroup.
    if mechanism != "rlimits" and outcome.memory_peak_bytes == 0:
        raise SandboxUnavailable(f"the self-test run was not charged to its cgroup ({bounds})")
    if mechanism == "rlimits":
        log.warning("sandbox: runs are bounded by %s", bounds)
    else:
        log.info("sandbox: runs are bounded by %s", bounds)
    return bounds


# --- The per-session switch --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionProgram:
    code: str
    language: LanguageName
    execution_enabled: bool
    #: Where the session's workspace policy, within what the operator allows, lets its code run.
    execution: Execution = "sandbox"


async def _row(db: AsyncSession, session_id: str) -> SessionRow:
    row = (await db.execute(select(SessionRow).where(SessionRow.id == session_id))).scalar_one_or_none()
    if row is None:
        raise SessionNotFound()
    return row


async def execution_enabled(db: AsyncSession, session_id: str) -> bool:
    return (await _row(db, session_id)).execution_enabled


async def client_runs_allowed(maker: async_sessionmaker[AsyncSession], settings: Settings, session_id: str) -> bool:
    """Whether the session may hold run records its clients write: not where its policy says `none` or its owner
    switched running off (the page offers no Run there). True for a session that is gone (nothing to clean)."""
    async with maker() as db:
        row = await db.get(SessionRow, session_id)
        if row is None:
            return True
        allowed = row.execution_enabled and effective_execution(settings, await policy_of(db, row)) != "none"
        await db.rollback()
    return allowed


async def set_execution_enabled(
    db: AsyncSession, session_id: str, owner_key: str | None, enabled: bool
) -> bool:
    row = await _row(db, session_id)
    check_owner(row, owner_key)
    row.execution_enabled = enabled
    await db.flush()
    return row.execution_enabled


async def _settings_of(db: AsyncSession, settings: Settings, row: SessionRow) -> SessionSettings:
    policy = await policy_of(db, row)
    allowed = effective_execution(settings, policy)
    return SessionSettings(
        # The owner's switch can only narrow what the workspace allows.
        execution_enabled=row.execution_enabled and allowed != "none",
        allow_clear_output=row.allow_clear_output,
        execution=allowed,
        languages=policy.languages,
    )


async def session_settings(db: AsyncSession, settings: Settings, session_id: str) -> SessionSettings:
    return await _settings_of(db, settings, await _row(db, session_id))


async def update_settings(
    db: AsyncSession, settings: Settings, session_id: str, owner_key: str | None, update: SessionSettingsUpdate
) -> SessionSettings:
    row = await _row(db, session_id)
    check_owner(row, owner_key)
    if update.execution_enabled:
        allowed = effective_execution(settings, await policy_of(db, row))
        if allowed == "none":
            raise Forbidden(
                "This session's policy does not let code run; an owner can narrow its workspace's policy, not "
                "widen it.",
                code="forbidden_by_policy",
            )
    if update.execution_enabled is not None:
        row.execution_enabled = update.execution_enabled
    if update.allow_clear_output is not None:
        row.allow_clear_output = update.allow_clear_output
    await db.flush()
    return await _settings_of(db, settings, row)


async def check_clearer(maker: async_sessionmaker[AsyncSession], session_id: str, token: str | None) -> None:
    """Who may clear the session's shared output: an editor of the session, while the owner allows it."""
    if token is None:
        raise Unauthorized(
            "Clearing the output needs a participant token in the X-Participant-Token header.",
            code="participant_token_required",
        )
    async with maker() as db:
        allowed = (await _row(db, session_id)).allow_clear_output
        await db.rollback()
    await runner_of(maker, session_id, token)
    if not allowed:
        raise Forbidden(
            "The session owner turned off clearing the output in this session.", code="clear_output_disabled"
        )


async def load_program(
    maker: async_sessionmaker[AsyncSession], settings: Settings, registry: LiveText | None, session_id: str
) -> SessionProgram:
    """The session's current code, read in a short transaction of its own.

    A run takes seconds; keeping the request's unit of work open that long would hold SQLite's write lock.
    While people are editing, the live document is newer than the stored mirror: run what they see.
    """
    from codeconnect.sessions.service import get_session

    async with maker() as db:
        row = await get_session(db, session_id)
        policy = await policy_of(db, row)
        program = SessionProgram(
            row.code, row.language, row.execution_enabled, effective_execution(settings, policy),  # type: ignore[arg-type]
        )
        await db.rollback()
    if registry is not None:
        # Through the document, never the stored mirror, which can trail it.
        async with registry.use(session_id) as room:
            language = cast(LanguageName, room.language())
            program = SessionProgram(room.shared.text(), language, program.execution_enabled, program.execution)
    # Any editor can write a language into the shared document (the live protocol carries no policy): the server
    # runs only what the workspace allows, whatever the document says.
    check_language(policy, program.language)
    return program


async def runner_of(
    maker: async_sessionmaker[AsyncSession], session_id: str, token: str | None
) -> dict[str, str] | None:
    """Who runs the session's code: the participant holding ``token`` (shown in the shared output), or None
    for an anonymous API call. A token that is not an editor's of this session is refused."""
    if token is None:
        return None
    from codeconnect.participants.service import authenticate

    async with maker() as db:
        participant = await authenticate(db, session_id, token)
        if participant is None:
            raise Forbidden(
                "The participant token does not belong to this session.", code="participant_token_invalid"
            )
        if participant.role != "editor":
            raise Forbidden("Viewers cannot run the session's code.", code="read_only_participant")
        by = {"participantId": participant.id, "name": participant.name, "color": participant.color}
        await db.rollback()
    return by


async def check_stopper(maker: async_sessionmaker[AsyncSession], session_id: str, token: str | None) -> None:
    """Who may stop a run of the session: anyone holding its run id (the starter chose it; nobody else sees it
    before the run ends), but with a participant token only an editor of this session (as for a run)."""
    async with maker() as db:
        await _row(db, session_id)
        await db.rollback()
    await runner_of(maker, session_id, token)


# The input kept with a shared run record, as the page caps each output stream (64 KiB of UTF-8).
RECORD_STDIN_MAX_BYTES = 64 * 1024


def _cap_utf8(text: str, max_bytes: int) -> str:
    if len(text) * 4 <= max_bytes:
        return text
    return text.encode("utf-8", "surrogatepass")[:max_bytes].decode("utf-8", "ignore")


def run_record(
    result: ExecuteResult,
    started_at: datetime,
    by: dict[str, str] | None = None,
    run_id: str | None = None,
    stdin: str = "",
) -> dict[str, Any]:
    """The entry appended to the session's shared ``runs`` array (the live document's schema); its id is the
    one the caller chose for the run, so the page that started it can tell it apart. ``stdin`` is what the run
    read (bounded by ``max_stdin_bytes`` at the request), shown to everyone with the output."""
    return {
        "id": run_id or new_id(),
        "by": by,
        "source": "server",
        "language": result.language,
        "stdin": _cap_utf8(stdin, RECORD_STDIN_MAX_BYTES),
        "stdout": result.stdout,
        "stderr": result.stderr,
        "exitCode": result.exit_code,
        "signal": result.signal,
        "signalName": result.signal_name,
        "timedOut": result.timed_out,
        "outputTruncated": result.output_truncated,
        "outcome": result.outcome,
        "compileOutput": result.compile_output,
        "durationMs": result.duration_ms,
        "startedAt": started_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


async def publish_run(sink: RunSink, session_id: str, run: dict[str, Any]) -> None:
    # The caller already has its answer; a failing live layer must not turn a finished run into an error.
    try:
        await sink.append_run(session_id, run)
    except Exception:
        log.exception("could not append a server run to session output")
