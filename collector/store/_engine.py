"""Database URLs, engines and schema upgrades for SQLite and PostgreSQL.

``sqlite:///path`` (the default: one machine, WAL) and ``postgresql://…``
(replicas) are the two URLs an admin writes; they are mapped to the drivers
here (the standard library's sqlite3, psycopg 3), so nothing else names one.

SQLite transactions: a write transaction starts with ``BEGIN IMMEDIATE`` (it
takes the write lock up front, so two writers queue instead of failing on
upgrade), a read starts with a plain ``BEGIN``; ``synchronous=FULL`` because an
ack promises the batch survives a power cut.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otsentry.collector.store._errors import StoreError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "connect",
    "current_revision",
    "default_url",
    "is_postgres",
    "make_revision",
    "read",
    "redact",
    "upgrade",
    "write",
]

# Alembic narrates every step at INFO; the commands print their own one-line result.
logging.getLogger("alembic").setLevel(logging.WARNING)

#: PostgreSQL advisory lock key taken while the schema is upgraded (any 64-bit number).
_UPGRADE_LOCK = 0x6F7473656E747279  # "otsentry"


def default_url() -> str:
    """``$OTSENTRY_DB``, else the SQLite file in the collector's state folder."""
    if os.environ.get("OTSENTRY_DB"):
        return os.environ["OTSENTRY_DB"]
    state = os.environ.get("OTSENTRY_COLLECTOR_DIR") or "/var/lib/otsentry/collector"
    return f"sqlite:///{Path(state, 'ingest.sqlite')}"


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _driver_url(url: str) -> Any:
    try:
        u = make_url(url)
    except ArgumentError:
        raise StoreError(f"{url!r} is not a database URL (expected sqlite:///PATH or "
                         "postgresql://USER@HOST/DB)") from None
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise StoreError(f"{url!r}: a SQLite store needs a file, e.g. sqlite:///collector.sqlite")
        return u.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        return u.set(drivername="postgresql+psycopg")
    raise StoreError(f"{redact(url)}: unsupported database {backend!r} (sqlite or postgresql)")


def connect(url: str, *, pool_size: int = 4) -> Engine:
    """An engine for ``url``; the schema is not touched (see :func:`upgrade`).

    Raises:
        StoreError: the URL is not a SQLite or PostgreSQL URL, or the SQLite
            file's folder does not exist.
    """
    u = _driver_url(url)
    if u.get_backend_name() == "sqlite":
        folder = Path(u.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise StoreError(f"{url}: folder {folder} does not exist")
        engine = create_engine(u, pool_size=pool_size, max_overflow=8,
                               connect_args={"check_same_thread": False, "timeout": 60})
        _sqlite_events(engine)
        return engine
    return create_engine(u, pool_size=pool_size, max_overflow=8, pool_pre_ping=True)


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       "busy_timeout=60000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        immediate = conn.get_execution_options().get("otsentry_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_postgres(engine: Engine | Connection) -> bool:
    """True on PostgreSQL, False on SQLite."""
    return engine.dialect.name == "postgresql"


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
    with engine.connect() as conn:
        conn = conn.execution_options(otsentry_write=True)
        with conn.begin():
            yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read transaction (one snapshot), rolled back at the end."""
    with engine.connect() as conn, conn.begin():
        yield conn


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Bring the schema to ``revision`` with the Alembic migrations; return the new revision.

    Safe to run from several replicas at once: on PostgreSQL the upgrade holds an
    advisory lock, on SQLite the write lock.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with write(engine) as conn:
        if is_postgres(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK})
        command.upgrade(_alembic_config(conn), revision)
        return MigrationContext.configure(conn).get_current_revision() or ""


def current_revision(engine: Engine) -> str:
    """The schema revision of the database ("" when it was never upgraded)."""
    from alembic.runtime.migration import MigrationContext

    with read(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision() or ""


def make_revision(url: str, message: str, rev_id: str | None = None) -> None:
    """Write a new migration under ``migrations/versions`` by comparing ``url`` (at head) with
    the tables of :mod:`._schema`; a developer's tool, review the file it writes."""
    from alembic import command

    engine = connect(url)
    with write(engine) as conn:
        cfg = _alembic_config(conn)
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
