"""The commands: incidents declare/note/show with reporting status, report --out and status, config."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from otsentry.collector.cli import main
from otsentry.collector.store import Store
from otsentry.collector.upstream import leaked_addresses, parse_bundle, push_once
from otsentry.collector.upstream.testing import TaxiiServer
from otsentry.common.config import load_collector_config
from otsentry.common.errors import ConfigError

from tests.collector.test_incidents_cmd import _logging_back_to_stderr  # noqa: F401 (autouse)
from tests.collector.upstream.conftest import make_incident, validate


@pytest.fixture(name="db")
def _db(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[str, Store]]:
    path = tmp_path / "collector.sqlite"
    shutil.copyfile(sqlite_template, path)
    store = Store(f"sqlite:///{path}")
    try:
        yield f"sqlite:///{path}", store
    finally:
        store.close()


def _config(tmp_path: Path, taxii: TaxiiServer, extra: str = "") -> Path:
    (tmp_path / "nicc.password").write_text("secret\n")
    path = tmp_path / "collector.toml"
    path.write_text(f"""
[reporting]
organisation = "Example Water"

[[upstream]]
name = "nicc"
api_root = "{taxii.api_root}"
collection = "{taxii.collection}"
username = "nicc"
password_file = "nicc.password"
tlp = "amber+strict"
{extra}""")
    return path


def test_declare_note_show_and_status(db: tuple[str, Store], taxii: TaxiiServer, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    """An analyst declares an incident and adds a note; show and report status give the stages."""
    url, store = db
    iid = make_incident(store)
    assert main(["incidents", "declare", str(iid), "--db", url, "--by", "ana"]) == 0
    assert "reporting clocks started" in capsys.readouterr().out
    assert main(["incidents", "note", str(iid), "called", "the", "plant", "--db", url]) == 0
    cfg = load_collector_config(_config(tmp_path, taxii))
    push_once(store.engine, cfg.reporting)
    capsys.readouterr()
    assert main(["incidents", "show", str(iid), "--db", url]) == 0
    out = capsys.readouterr().out
    assert "declared" in out and "called the plant" in out
    assert "early-warning" in out and "acknowledged" in out and "final-report" in out
    assert main(["incidents", "list", "--db", url]) == 0
    assert "notification due" in capsys.readouterr().out
    assert main(["report", "status", "--db", url, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["stage"], r["status"]) for r in rows] == [
        ("early-warning", "acknowledged"), ("notification", "waiting"), ("final-report", "waiting")]
    (report,) = [o for o in taxii.objects() if o["type"] == "report"]
    assert "note" in {o["type"] for o in taxii.objects()}
    assert report["object_marking_refs"] == ["marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"]


def test_report_out_for_hand_carry(db: tuple[str, Store], tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    """report --incident ID --out writes one valid, redacted bundle that stix2 reads back."""
    url, store = db
    iid = make_incident(store)
    out = tmp_path / "bundle.json"
    assert main(["report", "--incident", str(iid), "--out", str(out), "--db", url]) == 0
    bundle = json.loads(out.read_text())
    validate(bundle)
    assert leaked_addresses(out.read_text()) == []
    assert parse_bundle(out.read_text()).objects
    assert main(["report", "--since", "1970-01-01", "--out", str(out), "--db", url]) == 0
    assert main(["report", "--since", "yesterday", "--out", str(out), "--db", url]) == 1
    assert "--since 'yesterday': expected a date" in capsys.readouterr().err


def test_bad_input_is_a_clear_error(db: tuple[str, Store], capsys: pytest.CaptureFixture) -> None:
    """Unknown incidents and empty notes are errors that say so, not crashes."""
    url, _ = db
    assert main(["incidents", "declare", "999", "--db", url]) == 1
    assert "no incident 999" in capsys.readouterr().err
    assert main(["report", "--incident", "1", "--out", "-", "--recipient", "csirt",
                 "--db", url]) == 1
    assert "no such [[upstream]] table" in capsys.readouterr().err


def test_config_errors_name_key_and_line(tmp_path: Path, taxii: TaxiiServer) -> None:
    """A bad [[upstream]] value names the file, the recipient's key and its line."""
    path = _config(tmp_path, taxii, '[upstream.sites.plant1]\ntlp = "purple"\n')
    with pytest.raises(ConfigError) as err:
        load_collector_config(path)
    assert err.value.key == "upstream[1].sites.plant1.tlp" and err.value.line == 13
    assert "amber+strict" in str(err.value)
    path.write_text(path.read_text().replace('password_file = "nicc.password"',
                                             'password_file = "missing"'))
    with pytest.raises(ConfigError, match="upstream\\[1\\].password_file"):
        load_collector_config(path)
    path.write_text('[[upstream]]\nname = "x"\napi_root = "ftp://x/"\ncollection = "c"\n')
    with pytest.raises(ConfigError, match="api_root.*ending in /") as err:
        load_collector_config(path)
    assert err.value.line == 3


def test_packaged_config_is_valid(tmp_path: Path) -> None:
    """packaging/collector.toml loads, and so does its [[upstream]] example once uncommented."""
    text = (Path(__file__).parents[3] / "packaging" / "collector.toml").read_text()
    assert load_collector_config(Path(__file__).parents[3] / "packaging" / "collector.toml"
                                 ).reporting.recipients == ()
    block = text.split("# --- [[upstream]] example\n")[1].split("# --- end of")[0]
    example = "\n".join(line[2:] for line in block.splitlines())
    (tmp_path / "nicc.password").write_text("secret")
    path = tmp_path / "collector.toml"
    path.write_text(example.replace("/etc/otsentry/nicc.password", "nicc.password"))
    (rc,) = load_collector_config(path).reporting.recipients
    assert (rc.name, rc.password, rc.policy.tlp) == ("nicc", "secret", "amber")
    assert rc.policy_for("plant1").label == "Water treatment plant A"
    assert rc.policy_for("plant1").tlp == "amber+strict"
