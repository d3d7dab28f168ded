"""Keeping secrets out of responses, and letting a redacted integration be sent back.

``GET /integrations/{name}`` masks every secret. An operator who edits that
output and PUTs it back sends the mask instead of the secret; for an
integration that already exists the mask means "keep the current value", so
the round trip works without anyone retyping a key.

The mask must not become a way to read or move a secret, so it keeps one only
where the stored version holds a secret at the same place, that place is still
secret in the new version (else ``GET`` would show it and the store keep it in
plain text), and the secret would still go where it was entered for (else a
new endpoint or header would receive it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from runner.errors import IntegrationInvalid, Problem
from runner.integrations.schema import (
    ApiKeyIntegration,
    Integration,
    OAuth2Integration,
    parse_integration,
)
from runner.integrations.schema_refusals import format_loc

REDACTED = "**********"
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|cookie|signature|credential", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NOTHING_STORED = (
    f"is the redaction mask {REDACTED!r}; send the real value (the mask keeps a value only "
    "where the integration being updated holds a secret at the same place)"
)

Path = tuple[str | int, ...]


def redacted(integration: Integration) -> dict[str, Any]:
    """The integration as JSON with every secret masked, safe to return or log."""
    body = integration.model_dump(mode="json", exclude_none=True)
    for path, _ in secrets_of(integration):
        set_at(body, path, REDACTED)
    return body


def parse_submitted(data: object, previous: Integration | None) -> Integration:
    """Parse integration JSON sent to the API, in which masks stand for stored secrets.

    Each mask is replaced by the secret ``previous`` holds at the same place, and
    refused (422, naming the field) if there is none, if that place is no longer
    secret in the new version, or if where the secret would be sent changed
    (see :func:`_destination`). Messages never quote a secret.
    """
    masked = list(_masked_paths(data))
    if not masked:
        return parse_integration(data)
    stored = dict(secrets_of(previous)) if previous is not None else {}
    if previous is None or any(path not in stored for path in masked):
        raise IntegrationInvalid(
            [Problem(format_loc(path), _NOTHING_STORED) for path in masked if path not in stored]
        )
    for path in masked:
        set_at(data, path, stored[path])
    spec = parse_integration(data)
    problems = _unkeepable(masked, previous, spec)
    if problems:
        raise IntegrationInvalid(problems)
    return spec


def _unkeepable(masked: list[Path], previous: Integration, spec: Integration) -> list[Problem]:
    """Masks whose secret may not be kept, each with why."""
    still_secret = {path for path, _ in secrets_of(spec)}
    before, after = _destination(previous), _destination(spec)
    changed = [part for part in before if before[part] != after[part]]
    return [
        Problem(format_loc(path), why)
        for path in masked
        if (why := _why_unkeepable(path, still_secret, changed)) is not None
    ]


def _why_unkeepable(path: Path, still_secret: set[Path], changed: list[str]) -> str | None:
    if path not in still_secret:
        # Kept, the secret would be shown by GET and stored in plain text. Only a header
        # or an init kwarg can lose its mark: api_key_value and token are always secret.
        marks = "secret_headers" if path[0] == "headers" else "custom_llm_config.secret_init_kwargs"
        return (
            f"is the redaction mask, but this value would no longer be secret; keep "
            f"{path[-1]!r} in {marks}, or send the value itself"
        )
    if changed:
        return (
            f"is the redaction mask, but {' and '.join(changed)} changed; a stored secret is "
            "only sent where it was entered for, so send the value again with this change"
        )
    return None


def _destination(spec: Integration) -> dict[str, object]:
    """Where the integration's secrets are sent, by the words a refusal uses for each part.

    The endpoint counts by origin (scheme, host, port): a new path on the same
    server is the same recipient. The token URL counts whole, as the client
    secret is posted to exactly that URL. A ``Host`` header counts too: a server
    shared by many sites (a CDN) hands the request to the site it names.
    """
    api_key_header = spec.api_key_header if isinstance(spec, ApiKeyIntegration) else ""
    token_url = spec.oauth2_token_url if isinstance(spec, OAuth2Integration) else None
    host_header = next((v for k, v in spec.headers.items() if k.lower() == "host"), "")
    config = spec.custom_llm_config
    return {
        "authentication_type": spec.authentication_type,
        "the endpoint's scheme, host or port": _origin(spec.endpoint),
        "api_key_header": api_key_header.lower(),
        "oauth2_token_url": token_url,
        "the Host header": host_header.lower(),
        "the handler (custom_llm_config file_name or class_name)": (
            (config.file_name, config.class_name) if config is not None else None
        ),
    }


def _origin(url: str | None) -> tuple[str, str, int] | None:
    if url is None:
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").rstrip("."), parts.port or _DEFAULT_PORTS[scheme]


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


def _masked_paths(value: object, path: Path = ()) -> Iterator[Path]:
    """Every place in decoded JSON that holds the mask, in lists as well as objects."""
    if value == REDACTED and path:
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _masked_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _masked_paths(item, (*path, index))


def set_at(body: Any, path: Path, value: Any) -> None:
    """Put ``value`` at ``path`` (object keys and list indexes) in decoded JSON."""
    for key in path[:-1]:
        body = body[key]
    body[path[-1]] = value
