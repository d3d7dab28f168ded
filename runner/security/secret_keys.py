"""The keys that encrypt stored secrets, and where they come from.

``RUNNER_SECRET_KEY`` lists Fernet keys, newest first: the newest encrypts, every
one of them decrypts, so a key can be rotated in without a flag day. With no
key configured the runner generates one into ``RUNNER_DATA_DIR/secret.key``
(mode 0600) on first start, which suits a single runner with a local disk;
replicas sharing a database must share ``RUNNER_SECRET_KEY`` instead.

Each stored row records the *key id* it was encrypted under (an HMAC of a fixed
label under the key, which reveals nothing about the key). That is how the
runner tells "started with the wrong key" (refuse to start) from "this one row
is damaged" (report it, serve the rest).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from runner.security.private_files import PRIVATE_FILE_MODE, private_dir
from runner.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"


class KeyConfigError(Exception):
    """The configured keys cannot be used; the message says how to fix them."""


class SecretBox:
    """Encrypts with the newest key, decrypts with any of them."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = tuple(keys)
        self._fernet = MultiFernet([Fernet(k) for k in self.keys])

    @property
    def key_id(self) -> str:
        """The id rows encrypted from now on are stamped with."""
        return key_id(self.keys[0])

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(key_id(k) for k in self.keys)

    def encrypt(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        """Raise :class:`cryptography.fernet.InvalidToken` when no key opens ``token``."""
        return self._fernet.decrypt(token.encode("ascii"))

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the newest key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")


def key_id(key: bytes) -> str:
    return hmac.new(key, b"runner secret key id", hashlib.sha256).hexdigest()[:16]


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def load_secret_box(settings: Settings) -> SecretBox:
    """The keys from RUNNER_SECRET_KEY, or from the key file (made on first start)."""
    if settings.secret_key is not None:
        return _box(settings.secret_key.get_secret_value().split(","), "RUNNER_SECRET_KEY")
    path = settings.data_dir / KEY_FILE_NAME
    if not path.exists() and _write_key_file(path, [generate_key()], replace=False):
        log.warning(
            "generated a new secret key in %s: back it up with the database, and set "
            "RUNNER_SECRET_KEY instead when several runners share one database",
            path,
        )
    return _box(path.read_text().split(), str(path))


def add_key_to_file(settings: Settings) -> Path:
    """Put a fresh key first in the key file, keeping the older ones for decryption."""
    path = settings.data_dir / KEY_FILE_NAME
    old = path.read_text().split() if path.exists() else []
    _write_key_file(path, [generate_key(), *old])
    return path


def _box(entries: list[str], source: str) -> SecretBox:
    keys = [e.strip().encode("ascii") for e in entries if e.strip()]
    if not keys:
        raise KeyConfigError(f"{source} holds no key; generate one with `runner generate-key`")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise KeyConfigError(
                f"key {position} in {source} is not a Fernet key (32 url-safe base64-encoded "
                "bytes); generate one with `runner generate-key`"
            ) from None
    return SecretBox(keys)


def _write_key_file(path: Path, keys: list[str], replace: bool = True) -> bool:
    """Write the keys readable by the owner only, the file appearing whole in one step.

    With ``replace=False`` an existing file is kept and False returned: runners
    (or ``runner serve --workers`` workers) first started together on one data
    folder must all end up with the same key, or each would seal rows the
    others cannot open. A hard link, unlike a rename, fails when the name exists.
    """
    private_dir(path.parent)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        with os.fdopen(descriptor, "w") as file:
            file.write("\n".join(keys) + "\n")
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
            return True
        return _link_if_absent(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _link_if_absent(temporary: Path, path: Path) -> bool:
    """Give ``temporary`` the name ``path`` unless that name exists; True if it was given."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: rename, as before
        if path.exists():
            return False
        os.replace(temporary, path)
    return True
