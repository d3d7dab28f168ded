"""Where this runner keeps things, as absolute paths an operator can check.

Relative settings (the defaults ``config`` and ``data`` among them) follow the
working directory, so a runner started from another folder silently uses
another store; the start log and ``GET /health`` therefore spell every place
out. Never a secret: a database URL is shown without its password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from runner.security.secret_keys import KEY_FILE_NAME
from runner.settings import Settings

log = logging.getLogger(__name__)


def places(settings: Settings) -> dict[str, str | None]:
    """The config folder, handler folder (None when handlers are off), store and key."""
    return {
        "config_dir": str(settings.config_dir.resolve()),
        "custom_llms_directory": (
            str(settings.custom_llms_directory.resolve()) if settings.custom_llms_enabled else None
        ),
        "database": _shown_url(settings),
        "secret_key": (
            "RUNNER_SECRET_KEY"
            if settings.secret_key is not None
            else str((settings.data_dir / KEY_FILE_NAME).resolve())
        ),
    }


def announce(settings: Settings, *, new_store: bool) -> None:
    """Log where everything is; loudly when the store is new, as integrations POSTed
    to an earlier one would otherwise seem to vanish."""
    where = places(settings)
    log.info(
        "config folder %s; handlers %s; store %s; secret key %s",
        where["config_dir"],
        f"from {where['custom_llms_directory']}" if where["custom_llms_directory"] else "off",
        where["database"],
        where["secret_key"],
    )
    if new_store:
        log.warning(
            "the store %s is new and empty. If integrations were POSTed to this runner "
            "before, they are in another store: point RUNNER_DATA_DIR (now %s) or "
            "RUNNER_DATABASE_URL at it. Relative paths follow the working directory.",
            where["database"],
            settings.data_dir.resolve(),
        )


def key_mismatch(settings: Settings, have: Iterable[str], sealed_with: dict[str, str]) -> str:
    """Why the runner will not start: which keys sealed the stored rows (``sealed_with``:
    name -> key id), which it ``have``s, and where its keys came from. Key ids are
    digests, never keys."""
    return (
        f"cannot decrypt {len(sealed_with)} stored integration(s) "
        f"({', '.join(sorted(sealed_with))}): they were sealed with key id(s) "
        f"{', '.join(sorted(set(sealed_with.values())))}, and this runner's keys, from "
        f"{places(settings)['secret_key']}, have id(s) {', '.join(sorted(have))}. Start with "
        "the key they were written with; to move to a new key, set RUNNER_SECRET_KEY to the "
        "new key and the old one, comma-separated (new first), and run `runner rotate-key`"
    )


def _shown_url(settings: Settings) -> str:
    if settings.database_url is None:
        return f"sqlite:///{(settings.data_dir / 'runner.db').resolve()}"
    try:
        return make_url(settings.database_url.get_secret_value()).render_as_string(
            hide_password=True
        )
    except ArgumentError:
        return "(not a database URL)"
