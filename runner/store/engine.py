"""Connecting to the store's database and bringing its schema up to date.

Operators write the plain URL forms (``sqlite:///path``, ``postgresql://…``);
the runner picks the asyncio driver for each, so nothing on the request path
ever blocks on the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runner.security.private_files import private_dir, private_file

MIGRATIONS = Path(__file__).parent / "migrations"
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


class StoreConfigError(Exception):
    """RUNNER_DATABASE_URL cannot be used; the message says why and what to write."""


def async_url(url: str) -> str:
    """``sqlite:///x`` → ``sqlite+aiosqlite:///x``; ``postgres(ql)://`` → asyncpg."""
    try:
        parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    except ArgumentError:
        raise StoreConfigError(
            "RUNNER_DATABASE_URL is not a database URL; write sqlite:///path/runner.db "
            "or postgresql://user:password@host:5432/database"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in _ASYNC_DRIVERS:
        raise StoreConfigError(
            f"RUNNER_DATABASE_URL uses {backend!r}; the store supports sqlite:// and postgresql://"
        )
    if not driver:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    return parsed.render_as_string(hide_password=False)


def open_engine(url: str) -> AsyncEngine:
    """An engine for the store; for SQLite, the parent folder is created first."""
    target = make_url(async_url(url))
    if target.get_backend_name() == "sqlite":
        if target.database and target.database != ":memory:":
            database = Path(target.database)
            private_dir(database.parent)
            private_file(database)
        engine = create_async_engine(target, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(target, pool_size=5, max_overflow=5, pool_pre_ping=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL lets readers run beside a writer (another runner on the same file);
    FULL sync makes every acknowledged write survive a crash."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


async def migrate(engine: AsyncEngine) -> bool:
    """Apply every Alembic migration the database lacks (a no-op when it is current);
    True when the database had none: the store was created just now."""
    async with engine.connect() as connection:
        created = not await connection.run_sync(
            lambda sync: inspect(sync).has_table("alembic_version")
        )
        await connection.run_sync(_upgrade)
        await connection.commit()
    return created


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
