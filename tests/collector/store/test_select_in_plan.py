"""Ingest's lookups search the unique indexes: a scan per group commit grows with the store."""

from __future__ import annotations

from pathlib import Path

from otsentry.collector.store import Store, connect, write
from otsentry.collector.store import _raw
from otsentry.collector.store import _schema as S


def _plans(conn, sql: str, params: tuple) -> list[str]:
    return [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]


def test_lookups_by_key_search_the_index_on_sqlite(tmp_path: Path) -> None:
    Store(f"sqlite:///{tmp_path / 's.sqlite'}", create=True).close()
    engine = connect(f"sqlite:///{tmp_path / 's.sqlite'}")
    seen: list[str] = []
    real = None
    try:
        with write(engine) as conn:
            real = conn.exec_driver_sql

            def spy(sql, params=None, *a, **kw):  # records the plan of every SELECT it runs
                if sql.startswith("SELECT"):
                    seen.extend(_plans(conn, sql, params))
                return real(sql, params, *a, **kw)

            conn.exec_driver_sql = spy  # type: ignore[method-assign]
            keys = [("site/p/agent/a", f"f{i}") for i in range(50)] + [("site/q/agent/b", "g")]
            _raw.select_in(conn, S.findings, ("id",), ("agent_id", "finding_id"), keys)
            _raw.select_in(conn, S.assets, ("id",), ("site", "ip", "mac", "vlan", "unit"),
                           [("p", "10.0.0.1", "", -1, u) for u in range(5)])
    finally:
        engine.dispose()
    assert len(seen) == 3  # one query per (agent) and per (site, ip, mac, vlan)
    assert all(p.startswith("SEARCH") for p in seen), seen
