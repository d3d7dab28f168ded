"""Management routes: create, read, update, delete and test integrations.

Guarded by :func:`require_admin`: with ``RUNNER_ADMIN_KEY`` set every call must
bear it; without one, only clients on this machine may manage integrations.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ..errors import RunnerError
from ..integrations import IntegrationService
from ..json_body import decode_json
from ..probes import DEFAULT_DEADLINE_SECONDS, MAX_DEADLINE_SECONDS, deadline_from, probe_all
from ..redaction import parse_submitted, redacted
from ..registry import Registered, Registry
from ..settings import Settings
from ..text_rules import check_text


def require_admin(request: Request) -> None:
    """Refuse management calls that lack the admin key (or, with no key set, come off-box)."""
    settings: Settings = request.app.state.settings
    if settings.admin_key is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = settings.admin_key.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise RunnerError(
                "The management API needs 'Authorization: Bearer <RUNNER_ADMIN_KEY>'.",
                401,
                "authentication_error",
                "invalid_admin_key",
            )
    elif not _is_loopback(request.client.host if request.client else None):
        raise RunnerError(
            "The management API answers only clients on this machine while RUNNER_ADMIN_KEY is "
            "unset; set RUNNER_ADMIN_KEY on the server and send it as a bearer token.",
            403,
            "permission_error",
            "admin_key_required",
        )


def _is_loopback(host: str | None) -> bool:
    """Only a loopback *address* is local: behind uvicorn's proxy-header handling the
    client may be whatever a forwarded header said, and a name such as ``localhost``
    there is a claim, not a connection."""
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


router = APIRouter(
    prefix="/integrations", tags=["integrations"], dependencies=[Depends(require_admin)]
)


def _registry(request: Request) -> Registry:
    return request.app.state.registry


def _describe(registered: Registered, registry: Registry) -> dict[str, Any]:
    origin = registered.origin
    stamp = origin.stamp
    described: dict[str, Any] = {
        "name": registered.name,
        "source": origin.source,
        "version": stamp.version if stamp else None,
        "created_at": stamp.created_at.isoformat() if stamp else None,
        "updated_at": stamp.updated_at.isoformat() if stamp else None,
        "models": [d.alias for d in registered.deployments],
        "default_model": registered.default.alias,
        "integration": redacted(registered.spec),
    }
    if origin.file is not None:
        described["file"] = origin.file
    if registered.client.handler is not None:
        described["handler_error"] = registry.handler_errors.get(registered.name)
    return described


@router.get("")
async def list_integrations(request: Request) -> dict[str, Any]:
    registry = _registry(request)
    return {"data": [_describe(r, registry) for r in registry.integrations()]}


@router.get("/{name}")
async def get_integration(name: str, request: Request) -> dict[str, Any]:
    registry = _registry(request)
    return _describe(_existing(registry, name), registry)


@router.post("/{name}", responses={201: {"description": "Created"}})
@router.put("/{name}", responses={201: {"description": "Created"}})
async def put_integration(name: str, request: Request) -> JSONResponse:
    registry = _registry(request)
    service: IntegrationService = request.app.state.service
    check_text("name", name)  # "acme%0A" in the path arrives as "acme\n"
    service.check_writable(name)
    previous = registry.get(name)
    spec = parse_submitted(decode_json(await request.body()), previous and previous.spec)
    created = await service.put(name, spec)
    registered = _existing(registry, name)
    return JSONResponse(_describe(registered, registry), status_code=201 if created else 200)


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_integration(name: str, request: Request) -> Response:
    await request.app.state.service.delete(name)
    return Response(status_code=204)


@router.post(
    "/{name}/test",
    openapi_extra={
        "parameters": [
            {
                "name": "timeout",
                "in": "query",
                "required": False,
                "description": (
                    f"Seconds the whole test may take (default {DEFAULT_DEADLINE_SECONDS:g}, "
                    f"at most {MAX_DEADLINE_SECONDS:g})."
                ),
                "schema": {"type": "number", "exclusiveMinimum": 0},
            }
        ]
    },
)
async def test_integration(name: str, request: Request) -> dict[str, Any]:
    """Send one tiny request to each model, a few at a time, and report how each answered.

    Models not answered within the deadline are reported as not ``ok``.
    """
    registered = _existing(_registry(request), name)
    deadline = deadline_from(request.query_params.get("timeout"))
    results = await probe_all(registered.deployments, deadline)
    return {"name": name, "ok": all(r["ok"] for r in results), "results": results}


def _existing(registry: Registry, name: str) -> Registered:
    registered = registry.get(name)
    if registered is None:
        raise RunnerError(f"No integration named {name!r}.", 404, code="integration_not_found")
    return registered
