"""Config and baseline files: round trips, errors that name file, key and line, fuzzed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from otsentry.agent.detect import (
    Engine, baseline_from_dict, config_from_dict, detect_frames, dump_baseline, load_baseline,
    load_config, parse_duration,
)
from otsentry.agent.detect.testing import Wire
from otsentry.agent.testing import Conversation
from otsentry.common.errors import ConfigError

S = 1_000_000_000
T0 = 1_700_000_000 * S
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
keys = st.sampled_from(["window", "disable", "severity", "knobs", "suppress", "policy", "l2",
                        "max_keys", "min_severity", "bogus"])


def _learned() -> object:
    wire = Wire()
    conn = wire.connect(T0, "10.0.0.10", "10.0.0.20")
    conv = Conversation(unit=1)
    for k in range(40):
        wire.exchange(conn, T0 + k * S // 5, *conv.exchange(3, address=0, registers=(k, 5)))
        wire.exchange(conn, T0 + k * S // 5 + S // 10, *conv.exchange(6, address=9, value=100 + k))
    eng, _ = detect_frames(wire.sorted_frames(), learn_ns=60 * S)
    return eng.baseline


def test_baseline_round_trips_through_its_file(tmp_path: Path) -> None:
    """A learned baseline written and read back is the same baseline."""
    b = _learned()
    path = tmp_path / "b.json"
    path.write_text(dump_baseline(b))
    again = load_baseline(str(path))
    assert dump_baseline(again) == dump_baseline(b)
    assert again.pairs[("10.0.0.10", "10.0.0.20", 1, 3)] == [[0, 1]]
    assert again.registers[("10.0.0.20", 1, "holding_registers", 9)].max == 139


def test_baseline_errors_name_file_key_and_line(tmp_path: Path) -> None:
    """A bad unit in the third pair is reported with its key and line."""
    text = dump_baseline(_learned()).replace('"unit": 1, "function": 6', '"unit": 300, "function": 6')
    path = tmp_path / "b.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_baseline(str(path))
    assert err.value.key == "pairs[1].unit" and err.value.path == str(path)
    assert err.value.line == text.splitlines().index(
        next(ln for ln in text.splitlines() if '"unit": 300' in ln)) + 1


def test_edited_baseline_allows_a_write() -> None:
    """Adding a pair for a write to the baseline silences the new-write finding."""
    data = json.loads(dump_baseline(_learned()))
    data["pairs"].append({"client": "10.0.0.10", "server": "10.0.0.20", "unit": 1,
                          "function": 16, "ranges": [[20, 29]]})
    b = baseline_from_dict(data)
    wire = Wire()
    conn = wire.connect(T0, "10.0.0.10", "10.0.0.20")
    wire.exchange(conn, T0 + S, *Conversation(unit=1).exchange(16, address=20, registers=(1, 2)))
    wire.exchange(conn, T0 + 2 * S, *Conversation(unit=1).exchange(16, address=40, registers=(1,)))
    _eng, findings = detect_frames(wire.sorted_frames(), baseline=b)
    writes = [f.evidence.addresses for f in findings if f.kind == "baseline.new-write"]
    assert writes == [(40, 40)]


@given(st.dictionaries(st.sampled_from(["format", "version", "learned", "pairs", "rates",
                                        "cycles", "latency", "registers", "x"]), json_values))
def test_random_baselines_raise_only_config_errors(data: dict) -> None:
    """Any JSON document is either a baseline or a ConfigError."""
    data.setdefault("format", "otsentry-baseline")
    data.setdefault("version", 1)
    try:
        baseline_from_dict(data)
    except ConfigError:
        pass


@given(st.dictionaries(keys, json_values))
def test_random_configs_raise_only_config_errors(data: dict) -> None:
    """Any [detect] table is either a valid config or a ConfigError naming a key."""
    try:
        Engine(config_from_dict(data))
    except ConfigError as exc:
        assert exc.key is not None


def test_config_errors_name_file_key_and_line(tmp_path: Path) -> None:
    """A knob of the wrong type is reported with the file, the dotted key and its line."""
    path = tmp_path / "agent.toml"
    path.write_text('[detect]\nwindow = "5m"\n\n[detect.knobs."rate.flood"]\nrate = "fast"\n')
    with pytest.raises(ConfigError) as err:
        Engine(load_config(str(path)))
    assert 'detect.knobs."rate.flood".rate' in str(err.value) and str(path) in str(err.value)
    bad = tmp_path / "bad.toml"
    bad.write_text('[detect]\nwindow = "soon"\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(bad))
    assert (err.value.key, err.value.line) == ("detect.window", 2)


def test_durations_parse() -> None:
    """Durations accept ms, s, m, h and plain seconds."""
    assert [parse_duration(x) for x in ("500ms", "30s", "10m", "1h", 2)] == [
        S // 2, 30 * S, 600 * S, 3600 * S, 2 * S]
