"""Integrations, their encrypted secrets, and the change counter replicas poll.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("secrets", sa.Text, nullable=True),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_integrations_revision", "integrations", ["revision"])
    head = op.create_table(
        "store_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table("store_head")
    op.drop_index("ix_integrations_revision", "integrations")
    op.drop_table("integrations")
