"""The admin API (`/v1/admin/...`): workspaces, their policies and API keys. Thin wrappers over
``workspaces.service``; mounted only when ``CODECONNECT_ADMIN_TOKEN`` is set."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from codeconnect.deps import DB, SettingsDep
from codeconnect.errors import responses
from codeconnect.models import ApiKeyRow
from codeconnect.workspaces import service
from codeconnect.workspaces.schemas import (
    ApiKey,
    CreateApiKeyRequest,
    CreatedApiKey,
    CreateWorkspaceRequest,
    Policy,
    Workspace,
)

admin_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="`CODECONNECT_ADMIN_TOKEN`, as `Authorization: Bearer <token>`.",
)

WorkspaceRef = Annotated[
    str,
    Path(
        alias="workspace", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$",
        description="Workspace id or name.",
    ),
]
KeyId = Annotated[
    str, Path(alias="keyId", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="API key id.")
]


async def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(admin_bearer)]
) -> None:
    expected = settings.admin_token
    given = None if credentials is None else credentials.credentials
    # Compared as bytes in constant time; the router exists only when a token is set.
    if (
        expected is None
        or given is None
        or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.get_secret_value().encode())
    ):
        raise service.bearer_challenge("The admin API needs `Authorization: Bearer <admin token>`.", "unauthorized")


def to_workspace(found: service.WorkspaceView) -> Workspace:
    row = found.row
    return Workspace(
        id=row.id, name=row.name, policy=found.policy, created_at=row.created_at, active_keys=found.active_keys
    )


def to_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id, workspace_id=row.workspace_id, label=row.label, created_at=row.created_at,
        last_used_at=row.last_used_at, revoked_at=row.revoked_at,
    )  # fmt: skip


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])

    @router.get("/workspaces", summary="List workspaces", response_model=list[Workspace], responses=responses(401))
    async def list_workspaces(db: DB) -> list[Workspace]:
        return [to_workspace(w) for w in await service.list_workspaces(db)]

    @router.post(
        "/workspaces",
        status_code=201,
        summary="Create a workspace",
        response_model=Workspace,
        responses=responses(400, 401, 409, 422),
    )
    async def create_workspace(body: CreateWorkspaceRequest, db: DB, response: Response) -> Workspace:
        created = await service.create_workspace(db, body.name, body.policy)
        response.headers["Location"] = f"/v1/admin/workspaces/{created.row.id}"
        return to_workspace(created)

    @router.get(
        "/workspaces/{workspace}",
        summary="Get a workspace",
        response_model=Workspace,
        responses=responses(401, 404, 422),
    )
    async def get_workspace(workspace: WorkspaceRef, db: DB) -> Workspace:
        return to_workspace(await service.view(db, await service.find_workspace(db, workspace)))

    @router.put(
        "/workspaces/{workspace}/policy",
        summary="Replace a workspace's policy",
        response_model=Workspace,
        responses=responses(400, 401, 404, 422),
    )
    async def set_policy(workspace: WorkspaceRef, body: Policy, db: DB, request: Request) -> Workspace:
        """Applies to the workspace's sessions from their next join, creation, language switch or run."""
        changed = await service.set_policy(db, workspace, body)
        await db.commit()  # before the processes forget what they kept, so none of them reads the old one again
        request.app.state.policies.changed(changed.row.id)
        return to_workspace(changed)

    @router.get(
        "/workspaces/{workspace}/keys",
        summary="List a workspace's API keys",
        response_model=list[ApiKey],
        responses=responses(401, 404, 422),
    )
    async def list_keys(workspace: WorkspaceRef, db: DB) -> list[ApiKey]:
        return [to_key(k) for k in await service.list_keys(db, workspace)]

    @router.post(
        "/workspaces/{workspace}/keys",
        status_code=201,
        summary="Create an API key",
        response_model=CreatedApiKey,
        responses=responses(400, 401, 404, 422),
    )
    async def create_key(workspace: WorkspaceRef, body: CreateApiKeyRequest, db: DB) -> CreatedApiKey:
        """The response holds the key itself, shown only this once; only its hash is kept."""
        row, key = await service.create_key(db, workspace, body.label)
        return CreatedApiKey(**to_key(row).model_dump(), key=key)

    @router.delete(
        "/keys/{keyId}",
        status_code=204,
        summary="Revoke an API key",
        responses=responses(401, 404, 422),
    )
    async def revoke_key(key_id: KeyId, db: DB) -> Response:
        """The key stops working at once, on every process. Revoking a revoked key changes nothing."""
        await service.revoke_key(db, key_id)
        return Response(status_code=204)

    return router
