"""The agent's and the collector's TOML config: defaults, the shipped examples, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from otsentry.common.config import (
    load_agent_config, load_collector_config, parse_duration_s,
)
from otsentry.common.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_without_a_file() -> None:
    """No file at all gives a config that works on one machine."""
    a = load_agent_config(None)
    c = load_collector_config(None)
    assert a.collector.endpoints == ("localhost:50051",)
    assert a.collector.batch_bytes < c.max_message_bytes
    assert a.detect is not None and a.capture.ports == (502,)


def test_shipped_examples_load() -> None:
    """packaging/agent.toml and packaging/collector.toml are valid and show the defaults."""
    a = load_agent_config(REPO / "packaging" / "agent.toml")
    c = load_collector_config(REPO / "packaging" / "collector.toml")
    d = load_agent_config(None)
    assert (a.collector, a.outbox, a.capture) == (d.collector, d.outbox, d.capture)
    assert c.port == 50051 and c.max_message_bytes == 4 << 20


def test_relative_paths_follow_the_file(tmp_path: Path) -> None:
    """Relative paths are taken from the config file's folder; tls defaults sit in the state dir."""
    p = _write(tmp_path, '[agent]\nstate_dir = "state"\nsite = "north"\nname = "a1"\n')
    a = load_agent_config(p)
    assert a.state_dir == tmp_path / "state"
    assert a.collector.key == tmp_path / "state" / "tls" / "agent.key"
    assert a.agent_id == "site/north/agent/a1"


@pytest.mark.parametrize(("text", "key", "line"), [
    ('[agent]\nsite = "x"\n\n[collector]\nbatch_messages = 0\n', "collector.batch_messages", 5),
    ('[collector]\nendpoints = ["nohostport"]\n', "collector.endpoints", 2),
    ('[collector]\nack_timeout = "soon"\n', "collector.ack_timeout", 2),
    ('[outbox]\nmax_bytes = "lots"\n', "outbox.max_bytes", 2),
    ('[capture]\ninterface = "eth1"\npcap = "x.pcap"\n', "capture.pcap", 3),
    ('[capture]\nportz = [502]\n', "capture.portz", 2),
    ('[agent]\nsite = "bad site"\n', "agent.site", 2),
    ('[detect]\nwindow = "never"\n', "detect.window", 2),
])
def test_agent_errors_name_key_and_line(tmp_path: Path, text: str, key: str, line: int) -> None:
    """A bad value or unknown key raises ConfigError naming the file, the dotted key and the line."""
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_agent_config(p)
    assert (err.value.path, err.value.key, err.value.line) == (str(p), key, line)
    assert str(p) in str(err.value) and "expected" in str(err.value)


@pytest.mark.parametrize(("text", "key"), [
    ("[server]\nport = 70000\n", "server.port"),
    ('[server]\nmax_message_bytes = "1KiB"\n', "server.max_message_bytes"),
    ("[dashboard]\nport = 1\n", "dashboard"),
    ("[web]\nport = 1\n", "web.port"),
    ("[web]\nlisten = 8443\n", "web.listen"),
    ('[web]\nlisten = "localhost"\n', "web.listen"),
])
def test_collector_errors(tmp_path: Path, text: str, key: str) -> None:
    """The collector's config is checked the same way."""
    with pytest.raises(ConfigError) as err:
        load_collector_config(_write(tmp_path, text))
    assert err.value.key == key


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    """A TOML syntax error is reported with its line."""
    with pytest.raises(ConfigError) as err:
        load_collector_config(_write(tmp_path, "[server]\nport = = 1\n"))
    assert err.value.line == 2


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError that names it."""
    with pytest.raises(ConfigError, match="readable"):
        load_agent_config(tmp_path / "nope.toml")


def test_durations() -> None:
    """Durations accept units and plain seconds."""
    assert [parse_duration_s(v) for v in ("250ms", "2m", 3, "1.5s")] == [0.25, 120.0, 3.0, 1.5]
