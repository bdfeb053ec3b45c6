"""The collector's Prometheus metrics (``[metrics] listen``; off by default).

- ingest: batches and messages committed, group-commit transactions, and the
  depth of the store's commit queue (batches waiting for the writer thread);
  ``rate(otsentry_collector_messages_committed_total[1m])`` is the ingest rate;
- agents: streams open and distinct agents connected to this replica;
- upstream: incident report stages by recipient and status, and those overdue.

Other parts add theirs to the process-wide registry
(:data:`otsentry.common.metrics.REGISTRY`), e.g. the upstream reporter::

    from otsentry.common.metrics import REGISTRY
    SENT = REGISTRY.counter("otsentry_upstream_objects_total",
                            "STIX objects sent upstream, by result", labels=("result",))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from otsentry.common.config import CollectorConfig
from otsentry.common.metrics import REGISTRY, MetricsServer, Registry, serve_metrics

__all__ = ["connected", "register_store", "register_upstream", "start_collector_metrics"]

#: Open ingest streams per agent (``site/S/agent/A``), on the event loop's thread.
_STREAMS: Counter[str] = Counter()


@contextmanager
def connected(agent: str) -> Iterator[None]:
    """Count ``agent``'s ingest stream as open for the duration of the block."""
    _STREAMS[agent] += 1
    try:
        yield
    finally:
        _STREAMS[agent] -= 1
        if _STREAMS[agent] <= 0:
            del _STREAMS[agent]


def _register_streams(registry: Registry) -> None:
    registry.callback("otsentry_collector_agents_connected",
                      "Distinct agents with an open ingest stream to this collector", "gauge",
                      lambda: float(len(_STREAMS)))
    registry.callback("otsentry_collector_streams_open", "Open ingest streams", "gauge",
                      lambda: float(sum(_STREAMS.values())))


def register_store(store: Any, registry: Registry = REGISTRY) -> None:
    """Expose the ingest counters and commit queue of ``store`` (a collector ``Store``)."""
    ingest = store.ingest
    for name, help_, kind, attr in (
        ("otsentry_collector_batches_committed_total", "Agent batches committed to the store",
         "counter", "batches"),
        ("otsentry_collector_messages_committed_total",
         "Messages in committed batches (resent ones included; stored once)", "counter",
         "messages"),
        ("otsentry_collector_transactions_total", "Group-commit transactions of the store",
         "counter", "transactions"),
        ("otsentry_collector_commit_queue_depth",
         "Batches waiting for the store's group-commit writer", "gauge", "queue_depth"),
    ):
        registry.callback(name, help_, kind,  # type: ignore[arg-type]
                          lambda attr=attr: float(getattr(ingest, attr)))


def register_upstream(store: Any, registry: Registry = REGISTRY,
                      clock: Any = None) -> None:
    """Reporting upstream, read from the store at each scrape: report stages by recipient and
    status, and the stages past their due time and not acknowledged (the NICC's clock)."""
    import time

    from sqlalchemy import func, select

    from otsentry.collector.store import _schema as S
    from otsentry.collector.store import read

    now = clock or time.time_ns
    u = S.upstream_reports.c

    def stages() -> dict[tuple[str, ...], float]:
        with read(store.engine) as conn:
            rows = conn.execute(select(u.recipient, u.status, func.count())
                                .group_by(u.recipient, u.status)).all()
        return {(r, st): float(n) for r, st, n in rows}

    def overdue() -> dict[tuple[str, ...], float]:
        with read(store.engine) as conn:
            rows = conn.execute(select(u.recipient, func.count())
                                .where(u.due_ns < now(), u.status != "acknowledged")
                                .group_by(u.recipient)).all()
        return {(r,): float(n) for r, n in rows}

    registry.callback("otsentry_upstream_stages", "Incident report stages by recipient and "
                      "status (waiting, queued, sending, sent, acknowledged, failed)", "gauge",
                      stages, labels=("recipient", "status"))
    registry.callback("otsentry_upstream_overdue", "Report stages past their due time and not "
                      "acknowledged, by recipient", "gauge", overdue, labels=("recipient",))


def start_collector_metrics(cfg: CollectorConfig, store: Any) -> MetricsServer | None:
    """Serve the collector's metrics on ``[metrics] listen``; None when off.

    Raises:
        ConfigError: the address cannot be bound.
    """
    if not cfg.metrics.listen:
        return None
    _register_streams(REGISTRY)
    register_store(store)
    register_upstream(store)
    return serve_metrics(cfg.metrics.listen, cfg.path)
