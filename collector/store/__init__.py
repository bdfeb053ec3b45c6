"""The collector's store: SQLite (one machine, the default) or PostgreSQL (replicas).

One schema (:mod:`._schema`, SQLAlchemy Core) with Alembic migrations
(``otsentry.collector.migrations``); idempotent, group-committed ingest
(:mod:`._ingest`); a commit-ordered feed log (:mod:`._feed`); background jobs
shared by replicas through ``FOR UPDATE SKIP LOCKED`` (:mod:`._jobs`).

    store = Store("sqlite:///collector.sqlite", create=True)
    server, port = await run_server(pki_dir, commit=store.commit)
"""

from otsentry.collector.store._engine import (connect, current_revision, default_url, is_postgres,
                                              read, redact, upgrade, write)
from otsentry.collector.store._errors import StoreError
from otsentry.collector.store._feed import (EVERYTHING, NOTIFY_CHANNEL, FeedEntry, FeedFilter,
                                            FeedRow, FeedWaiter, append_feed, head, matches,
                                            read_feed)
from otsentry.collector.store._ingest import Ingest, source_ip
from otsentry.collector.store._jobs import NS_PER_DAY, Pruned, job, prune, set_cursor
from otsentry.collector.store._store import Store, ca_fingerprints, head_revision

__all__ = [
    "EVERYTHING", "NOTIFY_CHANNEL", "NS_PER_DAY", "FeedEntry", "FeedFilter", "FeedRow",
    "FeedWaiter", "Ingest", "Pruned",
    "Store", "StoreError", "append_feed", "ca_fingerprints", "connect", "current_revision",
    "default_url", "head", "head_revision", "is_postgres", "job", "matches", "prune", "read", "read_feed",
    "redact", "set_cursor", "source_ip", "upgrade", "write",
]
