"""Where integrations written through the API live: SQLite or PostgreSQL, secrets sealed.

- :mod:`.tables` and ``migrations/``: the schema, evolved by Alembic.
- :mod:`.engine`: URLs, drivers, running the migrations.
- :mod:`.codec`: an integration to a row with its secrets encrypted, and back.
- :mod:`.store`: one transaction per write, ordered by a global revision.
"""

from runner.store.codec import Sealed, UnreadableRow, seal, unseal
from runner.store.engine import StoreConfigError
from runner.store.store import IntegrationStore, Stamp, StoredRow

__all__ = [
    "IntegrationStore",
    "Sealed",
    "Stamp",
    "StoreConfigError",
    "StoredRow",
    "UnreadableRow",
    "seal",
    "unseal",
]
