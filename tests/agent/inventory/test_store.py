"""SQLite state: a restart between captures changes nothing; bad state files are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from otsentry.agent.inventory import STATE_FILE, Inventory
from otsentry.common.errors import ConfigError

from .conftest import read_captures

# Same network (gateway 192.168.0.20, master 192.168.0.21), recorded at different times.
FIRST, SECOND = "input-regs-poll-write-register.pcap", "gateway-units-unanswered.pcap"


def test_restart_between_captures_equals_one_run(shared_pcaps: Path, tmp_path: Path) -> None:
    """The inventory after two captures with a save/load in between equals reading both in one run."""
    one_run = Inventory()
    read_captures(one_run, [shared_pcaps / FIRST, shared_pcaps / SECOND])

    first = Inventory(state_dir=tmp_path)
    read_captures(first, [shared_pcaps / FIRST])
    first.save()
    restarted = Inventory.load(tmp_path)
    read_captures(restarted, [shared_pcaps / SECOND])

    assert restarted.to_dict() == one_run.to_dict()
    assert len(one_run.asset("192.168.0.20").devices) == 4


def test_save_load_round_trip(shared_pcaps: Path, tmp_path: Path) -> None:
    """Everything saved comes back: the loaded inventory prints the same as the saved one."""
    inv = Inventory(state_dir=tmp_path)
    read_captures(inv, [shared_pcaps / "scada-one-master-13-slaves.pcap",
                        shared_pcaps / "device-id-fc43.pcap"])
    inv.save()
    assert Inventory.load(tmp_path).to_dict() == inv.to_dict()


def test_readable_columns(shared_pcaps: Path, tmp_path: Path) -> None:
    """The database has readable columns for people using sqlite3 directly."""
    inv = Inventory(state_dir=tmp_path)
    read_captures(inv, [shared_pcaps / "input-regs-poll-write-register.pcap"])
    db = inv.save()
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("SELECT ip, role FROM assets"))
        units = [u for (u,) in con.execute("SELECT unit FROM devices ORDER BY unit")]
    assert rows["192.168.0.20"] == "gateway" and units == [1, 2, 3, 7]


def test_other_schema_refused(tmp_path: Path) -> None:
    """A state file of another schema version is refused, naming the file and the key."""
    with sqlite3.connect(tmp_path / STATE_FILE) as con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute("INSERT INTO meta VALUES ('schema', '99')")
    with pytest.raises(ConfigError) as err:
        Inventory(state_dir=tmp_path)
    assert STATE_FILE in str(err.value) and "meta.schema" in str(err.value)


def test_garbage_state_refused(tmp_path: Path) -> None:
    """A state file that is not SQLite is a ConfigError, not a crash."""
    (tmp_path / STATE_FILE).write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="inventory database"):
        Inventory.load(tmp_path)


def test_save_without_folder() -> None:
    """save() without a state folder says what is missing."""
    with pytest.raises(ConfigError, match="state_dir"):
        Inventory().save()
