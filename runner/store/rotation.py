"""Re-encrypting every stored secret under the newest key (``runner rotate-key``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cryptography.fernet import InvalidToken

from runner.security.secret_keys import SecretBox
from runner.store.store import IntegrationStore


@dataclass
class Rotation:
    rotated: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


async def rotate_secrets(store: IntegrationStore, box: SecretBox) -> Rotation:
    """Reseal each row still under an older key; rows no key opens are listed, not touched.

    Each row is swapped only if it is unchanged since it was read, so a write that
    lands meanwhile (already under the newest key) is never overwritten.
    """
    result = Rotation()
    for row in await store.rows():
        sealed = row.sealed
        assert sealed is not None
        if sealed.key_id == box.key_id:
            result.current.append(row.name)
            continue
        try:
            secrets = box.rotate(sealed.secrets)
        except InvalidToken:
            result.failed.append(row.name)
            continue
        resealed = replace(sealed, secrets=secrets, key_id=box.key_id)
        if await store.reseal(row.name, sealed, resealed):
            result.rotated.append(row.name)
        else:
            result.current.append(row.name)
    return result
