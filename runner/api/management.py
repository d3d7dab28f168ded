"""Management routes: create, read, update, delete and test integrations.

Guarded before they are reached (:class:`runner.security.admission.Admission`): with
``RUNNER_ADMIN_KEY`` set every call must bear it; without one, only clients on
this machine may manage integrations.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from runner.integrations.probes import (
    DEFAULT_DEADLINE_SECONDS,
    MAX_DEADLINE_SECONDS,
    deadline_from,
    probe_all,
)
from runner.integrations.problems import NotServed
from runner.integrations.redaction import redacted
from runner.integrations.registry import Registered
from runner.integrations.service import IntegrationService
from runner.json_body import decode_json
from runner.security.admission import MANAGEMENT_PREFIX
from runner.text_rules import check_text

router = APIRouter(prefix=MANAGEMENT_PREFIX, tags=["integrations"])


def _service(request: Request) -> IntegrationService:
    return request.app.state.service


def _describe(registered: Registered, service: IntegrationService) -> dict[str, Any]:
    origin = registered.origin
    stamp = origin.stamp
    described: dict[str, Any] = {
        "name": registered.name,
        "state": "serving",
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
        described["handler_error"] = service.problems.handlers.get(registered.name)
    return described


def _describe_not_served(name: str, not_served: NotServed) -> dict[str, Any]:
    """A stored integration this runner cannot serve: what is known of it, and why."""
    stamp = not_served.origin.stamp if not_served.origin is not None else None
    spec = not_served.spec
    return {
        "name": name,
        "state": "not_served",
        "reason": not_served.reason,
        "source": "api",
        "version": stamp.version if stamp else None,
        "created_at": stamp.created_at.isoformat() if stamp else None,
        "updated_at": stamp.updated_at.isoformat() if stamp else None,
        "models": [m.caller_alias for m in spec.model_properties] if spec else [],
        "default_model": spec.default_model_properties.caller_alias if spec else None,
        "integration": redacted(spec) if spec else None,
    }


@router.get("")
async def list_integrations(request: Request) -> dict[str, Any]:
    service = _service(request)
    described = {r.name: _describe(r, service) for r in service.registry.integrations()}
    for name, not_served in service.not_served().items():
        described[name] = _describe_not_served(name, not_served)
    return {"data": [described[name] for name in sorted(described)]}


@router.get("/{name}")
async def get_integration(name: str, request: Request) -> dict[str, Any]:
    service = _service(request)
    not_served = service.not_served().get(name)
    if not_served is not None:
        return _describe_not_served(name, not_served)
    return _describe(service.registry.require(name), service)


@router.post("/{name}", responses={201: {"description": "Created"}})
@router.put("/{name}", responses={201: {"description": "Created"}})
async def put_integration(name: str, request: Request) -> JSONResponse:
    service = _service(request)
    check_text("name", name)  # "acme%0A" in the path arrives as "acme\n"
    created = await service.submit(name, decode_json(await request.body()))
    registered = service.registry.require(name)
    return JSONResponse(_describe(registered, service), status_code=201 if created else 200)


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
    registered = _service(request).registry.require(name)
    deadline = deadline_from(request.query_params.get("timeout"))
    results = await probe_all(registered.deployments, deadline)
    return {"name": name, "ok": all(r["ok"] for r in results), "results": results}
