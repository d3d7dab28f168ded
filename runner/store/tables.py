"""The store's tables. Alembic migrations in ``migrations/`` create and evolve them.

``integrations`` holds one row per name ever written. A delete leaves a
tombstone (``deleted``, secrets dropped) so replicas polling for changes see
deletions the same way they see writes. ``revision`` orders every change
across all rows; ``store_head`` is its single-row counter, and updating it first
in each write transaction is what serializes writers, on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

integrations = Table(
    "integrations",
    metadata,
    Column("name", String(64), primary_key=True),
    # The integration JSON with every secret replaced by the redaction mask.
    Column("document", Text, nullable=False),
    # Fernet token of the secrets, as JSON [[path, value], ...]; NULL on tombstones.
    Column("secrets", Text, nullable=True),
    Column("key_id", String(16), nullable=True),
    Column("version", Integer, nullable=False),
    Column("revision", BigInteger, nullable=False, index=True),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

store_head = Table(
    "store_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("revision", BigInteger, nullable=False),
)
