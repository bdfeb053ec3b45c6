"""The two databases every store test runs against: a SQLite file and a throwaway PostgreSQL.

``db_url`` is parametrized (``sqlite``, ``postgresql``): each test gets a fresh,
upgraded database, copied from a template made once per session.  The
PostgreSQL cluster starts on first use, as a non-root user, and stops at the
end of the session.  Nothing here skips: a missing PostgreSQL fails the test.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from otsentry.collector.store import Store, connect, upgrade
from otsentry.collector.store.testing import PostgresCluster

DATABASES = ("sqlite", "postgresql")
_TEMPLATE = "otsentry_template"


@pytest.fixture(scope="session", name="pg_cluster")
def _pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.start(fast=True)
    try:
        engine = connect(cluster.create_database(_TEMPLATE))
        upgrade(engine)
        engine.dispose()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session", name="sqlite_template")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    engine = connect(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(params=DATABASES, name="db_url")
def _db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh, upgraded database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "collector.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(template=_TEMPLATE)


@pytest.fixture(name="store")
def _store(db_url: str) -> Iterator[Store]:
    """An open :class:`Store` on ``db_url``, closed after the test."""
    store = Store(db_url)
    try:
        yield store
    finally:
        store.close()
