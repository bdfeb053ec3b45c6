"""packaging/agent.toml and packaging/collector.toml document every option the loaders accept.

The accepted keys are asked of the loaders themselves: an unknown key in a
table is refused with "expected one of KEY, KEY, ...", so a key added to a
loader and not to its example fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from otsentry.common.config import load_agent_config, load_collector_config
from otsentry.common.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
_HEADER = re.compile(r"^#?\s*\[\[?([\w.\"-]+)\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^#?\s*"?([\w.-]+)"?\s*=')


def documented(path: Path) -> dict[str, set[str]]:
    """Keys shown per table in an example, set or commented out (``# key = ...``)."""
    tables: dict[str, set[str]] = {"": set()}
    table = ""
    for line in path.read_text().splitlines():
        if m := _HEADER.match(line.strip()):
            table = re.sub(r'"[^"]*"', "*", m.group(1))
            tables.setdefault(table, set())
            parts = table.split(".")
            for i in range(len(parts)):  # a sub-table documents its name in every parent
                tables.setdefault(".".join(parts[:i]), set()).add(parts[i])
        elif m := _KEY.match(line.strip()):
            tables[table].add(m.group(1))
    return tables


def accepted(load: Callable[[Path], object], tmp: Path, header: str, key: str) -> set[str]:
    """The keys the loader lists when ``header`` holds the unknown key ``zz_unknown``."""
    p = tmp / "probe.toml"
    p.write_text(f"{header}\nzz_unknown = 1\n" if header else "[zz_unknown]\n")
    with pytest.raises(ConfigError) as err:
        load(p)
    assert err.value.key == key
    listed = err.value.expected.removeprefix("one of ").replace("the tables ", "")
    return {k.strip().strip("[]") for k in listed.split(",")}


AGENT_TABLES = [
    ("", "", "zz_unknown"),
    ("agent", "[agent]", "agent.zz_unknown"),
    ("capture", "[capture]", "capture.zz_unknown"),
    ("collector", "[collector]", "collector.zz_unknown"),
    ("outbox", "[outbox]", "outbox.zz_unknown"),
    ("metrics", "[metrics]", "metrics.zz_unknown"),
    ("detect", "[detect]", "detect.zz_unknown"),
    ("detect.policy", "[detect.policy]", "detect.policy.zz_unknown"),
    ("detect.l2", "[detect.l2]", "detect.l2.zz_unknown"),
    ("detect.suppress", "[[detect.suppress]]\nunit = 1", "detect.suppress[0].zz_unknown"),
    ("detect.policy.allow_writes", "[[detect.policy.allow_writes]]\nunit = 1",
     "detect.policy.allow_writes[0].zz_unknown"),
]
COLLECTOR_TABLES = [
    ("", "", "zz_unknown"),
    ("server", "[server]", "server.zz_unknown"),
    ("store", "[store]", "store.zz_unknown"),
    ("metrics", "[metrics]", "metrics.zz_unknown"),
]


def _tables_and_keys(doc: dict[str, set[str]], table: str) -> set[str]:
    return {t.split(".")[0] for t in doc if t} if table == "" else doc.get(table, set())


@pytest.mark.parametrize(("table", "header", "key"), AGENT_TABLES)
def test_agent_example_documents_every_option(tmp_path: Path, table: str, header: str,
                                              key: str) -> None:
    """Every table and key the agent's loader accepts is shown in packaging/agent.toml."""
    doc = documented(REPO / "packaging" / "agent.toml")
    want = accepted(load_agent_config, tmp_path, header, key)
    assert want - _tables_and_keys(doc, table) == set()


@pytest.mark.parametrize(("table", "header", "key"), COLLECTOR_TABLES)
def test_collector_example_documents_every_option(tmp_path: Path, table: str, header: str,
                                                  key: str) -> None:
    """Every table and key the collector's loader accepts is shown in packaging/collector.toml."""
    doc = documented(REPO / "packaging" / "collector.toml")
    want = accepted(load_collector_config, tmp_path, header, key)
    assert want - _tables_and_keys(doc, table) == set()


def test_probe_sees_a_missing_option(tmp_path: Path) -> None:
    """The check fails for an example that leaves an option out."""
    text = (REPO / "packaging" / "collector.toml").read_text()
    short = tmp_path / "collector.toml"
    short.write_text(re.sub(r"(?m)^group_commit_max = .*$", "", text))
    want = accepted(load_collector_config, tmp_path, "[store]", "store.zz_unknown")
    assert want - documented(short)["store"] == {"group_commit_max"}


def test_commented_detect_examples_load(tmp_path: Path) -> None:
    """The commented-out [detect.*] examples of agent.toml are valid when switched on."""
    lines = (REPO / "packaging" / "agent.toml").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("# [detect."))
    setting = re.compile(r'^# (\[|"?[\w.-]+"?\s*=)')
    on = [ln[2:] if i >= start and setting.match(ln) else ln for i, ln in enumerate(lines)]
    p = tmp_path / "agent.toml"
    p.write_text("\n".join(on) + "\n")
    cfg = load_agent_config(p).detect
    assert cfg.write_policy == "allow-listed" and len(cfg.allow_writes) == 1
    assert len(cfg.suppress) == 1 and cfg.knobs == {"rate.flood": {"rate": 300}}
    assert cfg.l2.segments and cfg.severity
