"""``otsentry-collector incidents`` and ``db`` on both databases: list, show, JSON, upgrade, prune."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from otsentry.collector.cli import main
from otsentry.collector.correlate import Rules, correlate_once
from otsentry.collector.store import Store
from otsentry.common import logging as otlog
from tests.collector.correlate.test_job import ATTACKER, P1, P2, Feeder, _scan, _write


@pytest.fixture(autouse=True)
def _logging_back_to_stderr() -> Iterator[None]:
    """main() points the loggers at the captured stderr; point them back at the real one after."""
    yield
    saved, sys.stderr = sys.stderr, sys.__stderr__
    try:
        otlog.configure("console")
    finally:
        sys.stderr = saved


@pytest.fixture(name="with_incidents")
def _with_incidents(store: Store) -> Store:
    fd = Feeder(store)
    fd.send(P1, _scan("s1", ATTACKER), _write("w1", ATTACKER))
    fd.send(P2, _scan("s2", ATTACKER))
    correlate_once(store.engine, Rules())
    return store


def test_list_and_show(with_incidents: Store, db_url: str, capsys: pytest.CaptureFixture) -> None:
    """The list has a row per incident; show gives the members with their sites."""
    assert main(["incidents", "--db", db_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["ID", "SEVERITY", "RULE"] and len(out) == 3
    assert main(["incidents", "show", "2", "--db", db_url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rule"] == "cross-site-source" and shown["sites"] == ["plant1", "plant2"]
    assert sorted(f["id"] for f in shown["findings"]) == ["s1", "s2", "w1"]
    assert main(["incidents", "show", "1", "--db", db_url]) == 0
    assert "reconnaissance then write" in capsys.readouterr().out


def test_list_filters(with_incidents: Store, db_url: str, capsys: pytest.CaptureFixture) -> None:
    """Site and severity filters, as JSON lines."""
    assert main(["incidents", "list", "--site", "plant2", "--json", "--db", db_url]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["rule"] for r in rows] == ["cross-site-source"]
    assert main(["incidents", "list", "--min-severity", "critical", "--db", db_url]) == 0
    assert "site-source" in capsys.readouterr().out


def test_show_unknown(store: Store, db_url: str, capsys: pytest.CaptureFixture) -> None:
    """An unknown id exits 1 with a message."""
    assert main(["incidents", "show", "99", "--db", db_url]) == 1
    assert "no incident 99" in capsys.readouterr().err


def test_db_commands(with_incidents: Store, db_url: str, capsys: pytest.CaptureFixture) -> None:
    """db upgrade says the schema is current, status counts rows, prune keeps recent findings."""
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "is current" in capsys.readouterr().out
    assert main(["db", "status", "--db", db_url]) == 0
    status = capsys.readouterr().out
    assert "findings  3" in status and "incidents 2" in status
    assert main(["db", "prune", "--days", "1", "--db", db_url]) == 0
    assert "pruned 0 findings" in capsys.readouterr().out


def test_unupgraded_database_named(tmp_path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Listing incidents of a database that was never upgraded says what to run."""
    assert main(["incidents", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"]) == 1
    assert "db upgrade" in capsys.readouterr().err
