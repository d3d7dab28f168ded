"""What a new version of an integration is checked against before it may replace the old.

The checks that need more than the integration itself: its name, the literal
addresses its URLs name (the running server's address policy), and the model
ids every other integration has claimed (the live routing table).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import TYPE_CHECKING

from runner.errors import IntegrationInvalid, Problem
from runner.integrations.schema import INTEGRATION_NAME, Integration
from runner.security.addresses import AddressPolicy

if TYPE_CHECKING:
    from runner.calls.types import Deployment


def check_name(name: str) -> None:
    """An integration name is also a model id and a path segment: a plain token."""
    if not INTEGRATION_NAME.match(name):
        raise IntegrationInvalid(
            [
                Problem(
                    "name",
                    f"{name!r} is not a valid integration name: use 1-64 letters, digits, "
                    "'.', '_' or '-', starting with a letter or digit",
                )
            ]
        )


def check_addresses(spec: Integration, addresses: AddressPolicy) -> None:
    """A URL naming a refused address outright is refused now; names wait for requests."""
    urls = {"endpoint": spec.endpoint, "oauth2_token_url": getattr(spec, "oauth2_token_url", None)}
    problems = [
        Problem(field, f"{problem}; use the provider's public address")
        for field, url in urls.items()
        if url is not None and (problem := addresses.url_problem(url)) is not None
    ]
    if problems:
        raise IntegrationInvalid(problems)


def check_conflicts(
    name: str,
    spec: Integration,
    routes: Mapping[str, Deployment],
    integration_names: Container[str],
) -> None:
    """Model ids are global: an alias or integration name may be claimed only once."""

    def claimed(model_id: str) -> str | None:
        owner = routes.get(model_id)
        if owner is None or owner.integration == name:
            return None
        if model_id in integration_names:
            return f"is the name of integration {model_id!r}"
        return f"is already an alias of integration {owner.integration!r}"

    problems = []
    if (owner := claimed(name)) is not None:
        problems.append(
            Problem("name", f"{name!r} {owner}; pick an integration name no model uses")
        )
    for index, model in enumerate(spec.model_properties):
        owner = claimed(model.caller_alias)
        if owner is not None:
            problems.append(
                Problem(
                    f"model_properties[{index}].alias",
                    f"{model.caller_alias!r} {owner}; aliases are unique across integrations, "
                    "so choose another alias (or change it there first)",
                )
            )
    if problems:
        raise IntegrationInvalid(problems, status_code=409)
