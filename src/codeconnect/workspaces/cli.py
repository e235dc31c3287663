"""`codeconnect workspace ...` and `codeconnect key ...`: the admin API's operations from a shell on the server,
straight on the database (migrated first), for operators who keep the admin API off."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from codeconnect.config import Settings
from codeconnect.db import create_engine, create_sessionmaker, run_migrations
from codeconnect.errors import AppError
from codeconnect.languages import LANGUAGES
from codeconnect.workspaces import service
from codeconnect.workspaces.router import to_key, to_workspace
from codeconnect.workspaces.schemas import EXECUTION_ORDER, Policy

T = TypeVar("T")


def add_commands(sub: Any) -> None:
    """Add the ``workspace`` and ``key`` commands to the top-level parser's subparsers."""
    workspace = sub.add_parser("workspace", help="Create, list and set the policy of workspaces.")
    wsub = workspace.add_subparsers(dest="action", required=True)
    create = wsub.add_parser("create", help="Create a workspace.")
    create.add_argument("name")
    _policy_options(create)
    wlist = wsub.add_parser("list", help="List workspaces with their policies.")
    policy = wsub.add_parser(
        "policy", help="Show a workspace's policy, or change the fields given (`inherit` clears one)."
    )
    policy.add_argument("workspace", help="Workspace id or name (`default`: sessions made without a key).")
    _policy_options(policy)

    key = sub.add_parser("key", help="Create, list and revoke API keys.")
    ksub = key.add_subparsers(dest="action", required=True)
    kcreate = ksub.add_parser("create", help="Create an API key (printed once; only its hash is kept).")
    kcreate.add_argument("workspace", help="Workspace id or name.")
    kcreate.add_argument("--label", default="key", help="What the key is for (default: key).")
    klist = ksub.add_parser("list", help="List API keys (never the keys themselves).")
    klist.add_argument("workspace", nargs="?", help="Only this workspace's keys.")
    krevoke = ksub.add_parser("revoke", help="Revoke an API key: it stops working at once, on every process.")
    krevoke.add_argument("key_id")
    for parser in (create, wlist, policy, kcreate, klist, krevoke):
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")


def _policy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--execution", choices=[*EXECUTION_ORDER, "inherit"])
    parser.add_argument("--languages", help=f"Comma-separated, of {', '.join(LANGUAGES)}; or `inherit`.")
    parser.add_argument("--max-participants", help="A number, or `inherit`.")
    parser.add_argument("--retention-days", help="A number, or `inherit`.")
    parser.add_argument("--history-days", help="A number, or `inherit`.")


def _policy_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field in ("execution", "languages", "max_participants", "retention_days", "history_days"):
        value = getattr(args, field)
        if value is None:
            continue
        if value == "inherit":
            changes[field] = None
        elif field == "languages":
            changes[field] = [v.strip() for v in value.split(",") if v.strip()]
        elif field != "execution" and value.strip().isdigit():
            changes[field] = int(value)
        else:
            changes[field] = value  # anything else is for the policy's validation to refuse
    return changes


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out a ``workspace`` or ``key`` command; 0, or 2 with the reason on stderr."""
    try:
        output = asyncio.run(_run(args, settings))
    except AppError as exc:
        print(f"codeconnect: {exc.detail}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"codeconnect: invalid policy: {problems}", file=sys.stderr)
        return 2
    print(output)
    return 0


async def _run(args: argparse.Namespace, settings: Settings) -> str:
    await run_migrations(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        maker = create_sessionmaker(engine)

        async def unit(work: Callable[[Any], Awaitable[T]]) -> T:
            async with maker() as db, db.begin():
                return await work(db)

        return await _command(args, unit)
    finally:
        await engine.dispose()


async def _command(args: argparse.Namespace, unit: Any) -> str:
    as_json = bool(getattr(args, "json", False))
    if args.command == "workspace":
        if args.action == "list":
            found = await unit(service.list_workspaces)
            return _show([to_workspace(w) for w in found], as_json)
        if args.action == "create":
            policy = Policy.model_validate(_policy_changes(args))
            created = await unit(lambda db: service.create_workspace(db, args.name, policy))
            return _show(to_workspace(created), as_json)
        changes = _policy_changes(args)

        async def policy_of(db: Any) -> service.WorkspaceView:
            row = await service.find_workspace(db, args.workspace)
            if not changes:
                return await service.view(db, row)
            current = service.read_policy(row.policy).model_dump(by_alias=False)
            return await service.set_policy(db, row.id, Policy.model_validate({**current, **changes}))

        return _show(to_workspace(await unit(policy_of)), as_json)
    if args.action == "create":
        row, key = await unit(lambda db: service.create_key(db, args.workspace, args.label))
        shown = to_key(row).model_dump(mode="json")
        if as_json:
            return json.dumps({**shown, "key": key})
        return f"{key}\n(key {row.id} of workspace {row.workspace_id}; shown only now, only its hash is kept)"
    if args.action == "list":
        return _show([to_key(k) for k in await unit(lambda db: service.list_keys(db, args.workspace))], as_json)
    revoked = await unit(lambda db: service.revoke_key(db, args.key_id))
    return _show(to_key(revoked), as_json)


def _show(value: Any, as_json: bool) -> str:
    if as_json:
        if isinstance(value, list):
            return json.dumps([v.model_dump(mode="json") for v in value], indent=2)
        return json.dumps(value.model_dump(mode="json"), indent=2)
    items = value if isinstance(value, list) else [value]
    lines = []
    for item in items:
        data = item.model_dump(mode="json", exclude_none=True)
        if "policy" in data:
            data["policy"] = json.dumps(data["policy"], separators=(",", ":"))
        lines.append("  ".join(f"{k}={v}" for k, v in data.items()))
    return "\n".join(lines) if lines else "(none)"
