"""Keeping secrets out of responses, and letting a redacted integration be sent back.

``GET /integrations/{name}`` masks every secret. An operator who edits that
output and PUTs it back sends the mask instead of the secret; for an
integration that already exists the mask means "keep the current value", so
the round trip works without anyone retyping a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .errors import IntegrationInvalid, Problem
from .schema import ApiKeyIntegration, Integration, OAuth2Integration

REDACTED = "**********"
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|cookie|signature|credential", re.I)

Path = tuple[str, ...]


def redacted(integration: Integration) -> dict[str, Any]:
    """The integration as JSON with every secret masked, safe to return or log."""
    body = integration.model_dump(mode="json", exclude_none=True)
    for path, _ in secrets_of(integration):
        set_at(body, path, REDACTED)
    return body


def restore_redacted(data: object, previous: Integration | None) -> object:
    """Replace masks in submitted JSON with the secrets of the version being replaced.

    A mask with no previous secret behind it is refused: storing the mask as a
    key would only fail later, upstream, with a less helpful message.
    """
    if not isinstance(data, dict):
        return data
    kept = dict(secrets_of(previous)) if previous is not None else {}
    problems = []
    for path in _masked_paths(data):
        if path in kept:
            set_at(data, path, kept[path])
        else:
            problems.append(
                Problem(
                    ".".join(path),
                    f"is the redaction mask {REDACTED!r}; send "
                    "the real value (the mask keeps a value only when updating "
                    "an integration that already has one)",
                )
            )
    if problems:
        raise IntegrationInvalid(problems)
    return data


def secrets_of(integration: Integration) -> Iterator[tuple[Path, Any]]:
    """Where each secret sits in the integration's JSON, and its value.

    Secrets are the API key, the OAuth2 client credentials, and the headers and
    init_kwargs that are marked secret or whose names say so (``X-Api-Key``).
    """
    if isinstance(integration, ApiKeyIntegration):
        yield ("api_key_value",), integration.api_key_value.get_secret_value()
    if isinstance(integration, OAuth2Integration):
        yield (
            ("token",),
            {
                "client_id": integration.token.client_id,
                "client_secret": integration.token.client_secret.get_secret_value(),
            },
        )
    marked = {h.lower() for h in integration.secret_headers}
    for name, value in integration.headers.items():
        if name.lower() in marked or _SECRET_NAME.search(name):
            yield ("headers", name), value
    config = integration.custom_llm_config
    if config is not None:
        for key, value in config.init_kwargs.items():
            if key in config.secret_init_kwargs or _SECRET_NAME.search(key):
                yield ("custom_llm_config", "init_kwargs", key), value


def _masked_paths(data: dict[str, Any]) -> Iterator[Path]:
    for key, value in data.items():
        if value == REDACTED:
            yield (key,)
        elif isinstance(value, dict):
            yield from ((key, *rest) for rest in _masked_paths(value))


def set_at(body: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        body = body[key]
    body[path[-1]] = value
