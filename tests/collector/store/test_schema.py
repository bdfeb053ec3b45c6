"""Migrations and schema: the Alembic migrations create exactly the tables the code uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from otsentry.collector.store import (
    Store,
    StoreError,
    connect,
    current_revision,
    head_revision,
    upgrade,
)
from otsentry.collector.store._schema import METADATA


def test_migrations_match_schema(db_url: str) -> None:
    """Comparing the migrated database with the code's tables finds no difference."""
    engine = connect(db_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), METADATA) == []
    engine.dispose()


def test_upgrade_is_idempotent(db_url: str) -> None:
    """Upgrading an upgraded database changes nothing and reports the head revision."""
    engine = connect(db_url)
    assert upgrade(engine) == head_revision() == current_revision(engine)
    engine.dispose()


def test_store_refuses_old_schema(tmp_path: Path) -> None:
    """Opening a database that was never upgraded tells the admin to run db upgrade."""
    with pytest.raises(StoreError, match="db upgrade"):
        Store(f"sqlite:///{tmp_path / 'empty.sqlite'}")


def test_bad_urls(tmp_path: Path) -> None:
    """URLs of other databases, in-memory SQLite and missing folders are refused by name."""
    for url, msg in [("mysql://x/y", "unsupported database"), ("sqlite://", "needs a file"),
                     (f"sqlite:///{tmp_path}/no/such/x.sqlite", "does not exist"),
                     ("::", "not a database URL")]:
        with pytest.raises(StoreError, match=msg):
            connect(url)
