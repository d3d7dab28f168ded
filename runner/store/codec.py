"""Turning an integration into a row with its secrets encrypted, and back.

The row's ``document`` is the integration JSON exactly as ``GET`` shows it,
every secret replaced by the redaction mask, so a database dump reveals
nothing. The secrets travel separately in one Fernet token, stamped with the
id of the key that sealed it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.fernet import InvalidToken

from runner.errors import IntegrationInvalid
from runner.integrations.redaction import redacted, secrets_of, set_at
from runner.integrations.schema import Integration, parse_integration
from runner.security.secret_keys import SecretBox


@dataclass(frozen=True)
class Sealed:
    document: str
    secrets: str
    key_id: str


class UnreadableRow(Exception):
    """A stored integration that cannot be served; ``wrong_key`` says whose fault it is."""

    def __init__(self, name: str, reason: str, *, wrong_key: bool = False) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.wrong_key = wrong_key


def seal(integration: Integration, box: SecretBox) -> Sealed:
    secrets = [[list(path), value] for path, value in secrets_of(integration)]
    return Sealed(
        document=json.dumps(redacted(integration), separators=(",", ":")),
        secrets=box.encrypt(json.dumps(secrets, separators=(",", ":")).encode()),
        key_id=box.key_id,
    )


def unseal(name: str, sealed: Sealed, box: SecretBox) -> Integration:
    """The integration, secrets restored; :class:`UnreadableRow` says why not."""
    if sealed.key_id not in box.key_ids:
        raise UnreadableRow(
            name,
            f"encrypted under key id {sealed.key_id}, which is not among the configured keys",
            wrong_key=True,
        )
    try:
        secrets = json.loads(box.decrypt(sealed.secrets))
        data = json.loads(sealed.document)
        for path, value in secrets:
            set_at(data, tuple(path), value)
    except InvalidToken:
        raise UnreadableRow(name, "its secrets fail their integrity check (damaged row)") from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise UnreadableRow(name, f"its stored JSON is damaged ({exc})") from None
    try:
        return parse_integration(data)
    except IntegrationInvalid as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        raise UnreadableRow(name, f"it is no longer a valid integration: {problems}") from None
