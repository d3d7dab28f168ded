"""Reading and writing integration rows: each write one transaction, ordered by revision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runner.store.codec import Sealed
from runner.store.engine import migrate, open_engine
from runner.store.tables import integrations, store_head


@dataclass(frozen=True)
class Stamp:
    """When and in which order a write happened; ``GET /integrations`` shows it."""

    version: int
    revision: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredRow:
    name: str
    sealed: Sealed | None
    stamp: Stamp
    deleted: bool


class IntegrationStore:
    """Integrations written through the API, shared by every runner on the database."""

    def __init__(self, engine: AsyncEngine, created: bool = False) -> None:
        self._engine = engine
        self.created = created
        """Whether opening it created its tables: a new store, with nothing in it yet."""

    @classmethod
    async def open(cls, url: str) -> IntegrationStore:
        engine = open_engine(url)
        created = await migrate(engine)
        return cls(engine, created)

    @property
    def engine(self) -> AsyncEngine:
        """For tools needing SQL the store does not offer (the benchmark's bulk seeding)."""
        return self._engine

    @property
    def backend(self) -> str:
        return self._engine.dialect.name

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def head(self) -> int:
        """The revision of the newest change; replicas compare it with what they applied."""
        async with self._engine.connect() as connection:
            result = await connection.execute(select(store_head.c.revision))
            return result.scalar_one()

    async def rows(self) -> list[StoredRow]:
        """Every live integration, oldest change first."""
        return await self._select(integrations.c.deleted.is_(False))

    async def changes_since(self, revision: int) -> list[StoredRow]:
        """Writes and deletions after ``revision``, in the order they happened."""
        return await self._select(integrations.c.revision > revision)

    async def save(self, name: str, sealed: Sealed) -> Stamp:
        """Create or replace ``name`` in one transaction and return its new stamp."""
        async with self._engine.begin() as connection:
            revision = await _next_revision(connection)
            now = datetime.now(UTC)
            current = await _current(connection, name)
            values = {
                "document": sealed.document,
                "secrets": sealed.secrets,
                "key_id": sealed.key_id,
                "revision": revision,
                "deleted": False,
                "updated_at": now,
            }
            if current is None:
                stamp = Stamp(1, revision, now, now)
                await connection.execute(
                    insert(integrations).values(name=name, version=1, created_at=now, **values)
                )
            else:
                version, created_at, deleted = current
                created_at = now if deleted else _utc(created_at)
                stamp = Stamp(version + 1, revision, created_at, now)
                await connection.execute(
                    update(integrations)
                    .where(integrations.c.name == name)
                    .values(version=version + 1, created_at=created_at, **values)
                )
        return stamp

    async def delete(self, name: str) -> Stamp | None:
        """Leave a tombstone for ``name`` (its secrets erased); None when it is not stored."""
        async with self._engine.begin() as connection:
            revision = await _next_revision(connection)  # first: it takes the write lock
            current = await _current(connection, name)
            if current is None or current[2]:
                return None
            now = datetime.now(UTC)
            version, created_at, _ = current
            await connection.execute(
                update(integrations)
                .where(integrations.c.name == name)
                .values(
                    document="{}",
                    secrets=None,
                    key_id=None,
                    deleted=True,
                    version=version + 1,
                    revision=revision,
                    updated_at=now,
                )
            )
        return Stamp(version + 1, revision, _utc(created_at), now)

    async def reseal(self, name: str, old: Sealed, new: Sealed) -> bool:
        """Swap a row's encryption (key rotation) unless it was rewritten meanwhile."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(integrations)
                .where(integrations.c.name == name, integrations.c.secrets == old.secrets)
                .values(secrets=new.secrets, key_id=new.key_id)
            )
            return result.rowcount == 1

    async def _select(self, condition: ColumnElement[bool]) -> list[StoredRow]:
        query = select(integrations).where(condition).order_by(integrations.c.revision)
        async with self._engine.connect() as connection:
            result = await connection.execute(query)
            return [_row(r) for r in result.mappings()]


async def _next_revision(connection: AsyncConnection) -> int:
    """Take the next revision. The row lock this takes serializes writers until commit,
    so revisions become visible in order and a poller that saw N never misses N-1."""
    await connection.execute(
        update(store_head).where(store_head.c.id == 1).values(revision=store_head.c.revision + 1)
    )
    result = await connection.execute(select(store_head.c.revision).where(store_head.c.id == 1))
    return result.scalar_one()


async def _current(connection: AsyncConnection, name: str) -> tuple[int, datetime, bool] | None:
    result = await connection.execute(
        select(integrations.c.version, integrations.c.created_at, integrations.c.deleted).where(
            integrations.c.name == name
        )
    )
    row = result.first()
    return None if row is None else (row.version, row.created_at, row.deleted)


def _row(row: RowMapping) -> StoredRow:
    sealed = (
        None
        if row["deleted"]
        else Sealed(document=row["document"], secrets=row["secrets"], key_id=row["key_id"])
    )
    stamp = Stamp(row["version"], row["revision"], _utc(row["created_at"]), _utc(row["updated_at"]))
    return StoredRow(row["name"], sealed, stamp, row["deleted"])


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stamp the runner writes is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
