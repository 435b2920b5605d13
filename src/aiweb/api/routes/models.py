"""Registry routes under ``/v1/models``. Routes hold no queries: they call the service."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Path, Request, Response

from aiweb.api.deps import RegistryDep
from aiweb.api.problems import request_id
from aiweb.names import INT32_MAX, NAME_REGEX, check_name
from aiweb.registry.schemas import (
    AliasEventOut,
    AliasUpdate,
    ModelDetail,
    ModelList,
    ModelOut,
    ModelVersionOut,
    RollbackRequest,
)
from aiweb.security.auth import actor, scoped

router = APIRouter(prefix="/v1/models", tags=["models"])

NamePath = Annotated[
    str, Path(description="Registered model name.", max_length=63, pattern=NAME_REGEX)
]
VersionPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="Version number.")]


def _admin(responses: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """``scoped("admin")`` with more documented responses."""
    spec = scoped("admin")
    spec["responses"] = {**spec["responses"], **responses}
    return spec


@router.get("", **scoped("predict"))
async def list_models(registry: RegistryDep) -> ModelList:
    """Every registered model with its aliases and newest version."""
    models = await anyio.to_thread.run_sync(registry.list_models)
    return ModelList(models=[ModelOut.model_validate(m) for m in models])


@router.get("/{name}", **scoped("predict"))
async def get_model(name: NamePath, registry: RegistryDep) -> ModelDetail:
    """One registered model with all its versions."""
    check_name(name)

    def read() -> ModelDetail:
        model = registry.get_model(name)
        versions = registry.list_versions(name)
        return ModelDetail(
            **ModelOut.model_validate(model).model_dump(),
            versions=[ModelVersionOut.model_validate(v) for v in versions],
        )

    return await anyio.to_thread.run_sync(read)


@router.get("/{name}/versions/{version}", **scoped("predict"))
async def get_version(
    name: NamePath, version: VersionPath, registry: RegistryDep
) -> ModelVersionOut:
    """One model version: status, labels, lineage and evaluation report."""
    check_name(name)
    v = await anyio.to_thread.run_sync(registry.get_version, name, version)
    return ModelVersionOut.model_validate(v)


@router.put("/{name}/aliases/{alias}", **scoped("admin"))
async def set_alias(
    name: NamePath,
    alias: Annotated[str, Path(max_length=63, pattern=NAME_REGEX)],
    body: AliasUpdate,
    request: Request,
    registry: RegistryDep,
) -> AliasEventOut:
    """Point an alias (``production``, ``staging`` …) at a version: promotion.

    The new version is loaded and warmed in this process before the answer; other
    server processes switch within ``AIWEB_SERVING__ALIAS_REFRESH_S`` seconds.
    """
    check_name(name)
    check_name(alias, "alias")
    event = await anyio.to_thread.run_sync(
        lambda: registry.set_alias(
            name, alias, body.version, actor=actor(request), request_id=request_id(request)
        )
    )
    await registry.alias_moved(name)
    return AliasEventOut.model_validate(event)


@router.post("/{name}/rollback", **scoped("admin"))
async def rollback(
    name: NamePath,
    request: Request,
    registry: RegistryDep,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> AliasEventOut:
    """Move an alias (default ``production``) back to the version it pointed at before."""
    check_name(name)
    alias = body.alias if body else "production"
    event = await anyio.to_thread.run_sync(
        lambda: registry.rollback(name, alias, actor=actor(request), request_id=request_id(request))
    )
    await registry.alias_moved(name)
    return AliasEventOut.model_validate(event)


@router.delete(
    "/{name}/versions/{version}",
    status_code=204,
    **_admin(
        {
            404: {"description": "No such model or version."},
            409: {"description": "An alias or an active job uses the version (named)."},
        }
    ),
)
async def delete_version(
    name: NamePath, version: VersionPath, request: Request, registry: RegistryDep
) -> Response:
    """Delete one version: its registry entry and its artifact files (audited as
    ``version.delete``).

    Refused (409) while an alias points at the version: move the alias first
    (``PUT /v1/models/{name}/aliases/{alias}``, or a rollback); and while a pending or
    running job (a batch prediction) uses it. The version's number is
    never given again; the predictions it served stay in the prediction log. This
    process stops serving ``name:version`` before the answer; other server processes
    holding it in memory serve it until they evict it or restart.
    """
    check_name(name)
    await anyio.to_thread.run_sync(
        lambda: registry.delete_version(
            name, version, actor=actor(request), request_id=request_id(request)
        )
    )
    await registry.alias_moved(name)
    return Response(status_code=204)


@router.delete(
    "/{name}",
    status_code=204,
    **_admin(
        {
            404: {"description": "No such model."},
            409: {"description": "A pending or running job uses the model (named)."},
        }
    ),
)
async def delete_model(name: NamePath, request: Request, registry: RegistryDep) -> Response:
    """Delete a registered model with every version, alias and artifact file (audited
    as ``model.delete``, with the versions and aliases it had).

    Refused (409) while a pending or running job uses the model: a training job would
    register it again, a batch prediction would fail half-way.

    What else goes, and what stays:

    - its retraining schedule is removed, so it does not fire for a missing model, and
      its drift-alert claims are removed, so a new model of the same name gets alerts;
    - its predictions and their feedback stay in the prediction log: they are history
      (what was answered, when, by which version), kept for audits and exports.

    The name is free again afterwards (a new model of that name starts at version 1).
    This process stops serving the model before the answer (predictions get 404);
    other server processes stop serving its aliases within
    ``AIWEB_SERVING__ALIAS_REFRESH_S`` seconds, and a version they hold in memory for
    an explicit ``name:version`` until they evict it or restart.
    """
    check_name(name)
    await anyio.to_thread.run_sync(
        lambda: registry.delete_model(name, actor=actor(request), request_id=request_id(request))
    )
    await registry.alias_moved(name)
    return Response(status_code=204)
