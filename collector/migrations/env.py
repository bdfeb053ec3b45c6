"""Alembic environment: migrations run on the connection handed over by ``store.upgrade``.

There is no alembic.ini: a new revision is written by
``otsentry.collector.store._engine.make_revision(url, message)`` against a
database at head, and reviewed by hand.
"""

from __future__ import annotations

from alembic import context
from otsentry.collector.store._schema import METADATA

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only store.upgrade() runs migrations
    raise RuntimeError("run migrations with otsentry-collector db upgrade")

# render_as_batch: SQLite cannot ALTER most things; batch mode copies the table.
context.configure(connection=connection, target_metadata=METADATA, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
