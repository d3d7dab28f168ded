"""Helpers for the store's tests: databases to point runners at, and SQL from outside.

SQLite runs everywhere. PostgreSQL needs a server: ``.ci/run`` starts one and
sets RUNNER_TEST_POSTGRES_URL; without it, the tests start one themselves with
``.ci/postgres`` when PostgreSQL is installed, and are skipped when it is not.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .helpers import REPO


def sql(url: str, statement: str) -> list[tuple[str, ...]]:
    """Run one statement against a store's database directly, as an operator would."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            rows = connection.execute(statement).fetchall()
        return [tuple(str(v) for v in row) for row in rows]
    done = subprocess.run(
        ["psql", url, "-AtXq", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(line.split("\t")) for line in done.stdout.splitlines()]


def new_postgres_database(admin_url: str) -> str:
    name = f"runner_test_{uuid.uuid4().hex[:12]}"
    sql(admin_url, f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(admin_url: str, url: str) -> None:
    sql(admin_url, f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


@contextmanager
def own_postgres_server() -> Iterator[str | None]:
    """A server started with .ci/postgres, or None when PostgreSQL is not installed."""
    workdir = Path(tempfile.mkdtemp(prefix="runner-pg-"))  # under /tmp: the server must reach it
    try:
        url = subprocess.run(
            [str(REPO / ".ci" / "postgres"), "start", str(workdir / "pg")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (subprocess.CalledProcessError, OSError):
        yield None
        return
    try:
        yield url
    finally:
        subprocess.run([str(REPO / ".ci" / "postgres"), "stop", str(workdir / "pg")], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
