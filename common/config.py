"""One TOML file per process, validated at start: the agent's and the collector's config.

    cfg = load_agent_config("agent.toml")         # AgentConfig
    cfg = load_collector_config("collector.toml") # CollectorConfig

Every option has a default that works on one machine, so an empty file (or
none at all) is a valid config.  Every error is a
:class:`~otsentry.common.errors.ConfigError` naming the file, the dotted key,
its line and what was expected; unknown keys are errors too (a typo must not
silently fall back to a default).  ``packaging/agent.toml`` and
``packaging/collector.toml`` document every option.

The agent's ``[detect]`` table belongs to the detection engine and is parsed
by its own loader (:func:`otsentry.agent.detect.config_from_dict`), imported
only when an agent config is loaded: the collector never imports the agent.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from otsentry.common.errors import ConfigError

__all__ = [
    "AgentConfig", "CaptureConfig", "CollectorLink", "OutboxConfig", "CollectorConfig",
    "MetricsConfig",
    "load_agent_config", "load_collector_config", "parse_duration_s", "DEFAULT_AGENT_STATE",
    "DEFAULT_COLLECTOR_STATE", "WebConfig",
]

DEFAULT_AGENT_STATE = "/var/lib/otsentry/agent"
DEFAULT_COLLECTOR_STATE = "/var/lib/otsentry/collector"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(value: object) -> float:
    """``"250ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"30d"`` or a number of seconds, as seconds.

    Raises:
        ValueError: not a duration.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]


# --- the agent ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """``[capture]``: where packets come from."""

    interface: str = ""
    pcap: str = ""
    #: 0: as fast as possible; 1.0: at capture speed; 10: ten times faster.
    replay_speed: float = 0.0
    bpf: str = "tcp"
    ports: tuple[int, ...] = (502,)
    heuristic: bool = True


@dataclass(frozen=True, slots=True)
class CollectorLink:
    """``[collector]``: where and how the agent delivers."""

    endpoints: tuple[str, ...] = ("localhost:50051",)
    ca: Path = Path()
    cert: Path = Path()
    key: Path = Path()
    batch_messages: int = 500
    batch_bytes: int = 1 << 20
    batch_linger_s: float = 0.05
    max_unacked_batches: int = 8
    ack_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0
    status_interval_s: float = 60.0
    #: Renew the certificate once less than this part of its validity remains (0: never).
    renew_fraction: float = 0.3


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """``[outbox]``: bounds of the on-disk outbox."""

    max_messages: int = 100_000
    max_bytes: int = 256 << 20


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``[metrics]``: the Prometheus endpoint, off when ``listen`` is empty."""

    listen: str = ""

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to serve ``/metrics`` on, or None when off."""
        from otsentry.common.metrics import parse_listen

        return parse_listen(self.listen) if self.listen else None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The whole agent config; ``detect`` is a :class:`otsentry.agent.detect.DetectConfig`."""

    path: str = "<defaults>"
    site: str = "site"
    name: str = "agent"
    state_dir: Path = Path(DEFAULT_AGENT_STATE)
    baseline: str = ""
    learn_s: float | None = None
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    collector: CollectorLink = field(default_factory=CollectorLink)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    detect: Any = None
    status_file_interval_s: float = 1.0
    #: how often the state of the active assets is sent to the collector
    snapshot_interval_s: float = 60.0
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @property
    def agent_id(self) -> str:
        """``site/S/agent/A``, as in the certificate's identity."""
        return f"site/{self.site}/agent/{self.name}"


# --- the collector ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebConfig:
    """``[web]``: the analysts' dashboard (HTTPS), off when ``listen`` is empty."""

    listen: str = ""

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to serve the dashboard on, or None when off."""
        from otsentry.common.metrics import parse_listen

        return parse_listen(self.listen) if self.listen else None


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """The collector's config: ``[server]`` and ``[store]``."""

    path: str = "<defaults>"
    host: str = "127.0.0.1"
    port: int = 50051
    pki_dir: Path = Path(DEFAULT_COLLECTOR_STATE) / "pki"
    store: Path = Path(DEFAULT_COLLECTOR_STATE) / "ingest.sqlite"
    max_message_bytes: int = 4 << 20
    max_clock_skew_s: float = 30.0
    #: Port for online enrolment with one-time tokens (server-only TLS); 0: none.
    enroll_port: int = 0
    group_commit_max: int = 64
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    #: ``[reporting]`` and ``[[upstream]]``: an :class:`otsentry.common.upstream_config.ReportingConfig`.
    reporting: Any = field(default_factory=lambda: _reporting_default())
    web: WebConfig = field(default_factory=WebConfig)


def _reporting_default() -> Any:
    from otsentry.common.upstream_config import ReportingConfig

    return ReportingConfig()


# --- reading ------------------------------------------------------------------------------


class _Reader:
    """Typed reads out of parsed TOML; every failure names file, key and line."""

    def __init__(self, path: str, text: str) -> None:
        self.file, self.text = path, text

    def fail(self, key: str, expected: str) -> NoReturn:
        raise ConfigError(self.file, key, expected, _line_of(self.text, key))

    def table(self, data: dict, name: str, allowed: set[str]) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.fail(name, "a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            self.fail(f"{name}.{unknown[0]}", "one of " + ", ".join(sorted(allowed)))
        return value

    def string(self, t: dict, key: str, default: str, pattern: str = "", what: str = "") -> str:
        value = t.get(key.rsplit(".", 1)[-1], default)
        if not isinstance(value, str) or (pattern and not re.fullmatch(pattern, value)):
            self.fail(key, what or "a string")
        return value

    def integer(self, t: dict, key: str, default: int, lo: int, hi: int) -> int:
        value = t.get(key.rsplit(".", 1)[-1], default)
        if type(value) is not int or not lo <= value <= hi:
            self.fail(key, f"an integer from {lo} to {hi}")
        return value

    def number(self, t: dict, key: str, default: float, lo: float, hi: float) -> float:
        value = t.get(key.rsplit(".", 1)[-1], default)
        if type(value) not in (int, float) or not lo <= value <= hi:
            self.fail(key, f"a number from {lo:g} to {hi:g}")
        return float(value)

    def boolean(self, t: dict, key: str, default: bool) -> bool:
        value = t.get(key.rsplit(".", 1)[-1], default)
        if type(value) is not bool:
            self.fail(key, "true or false")
        return value

    def duration(self, t: dict, key: str, default: float, lo: float = 0.001,
                 hi: float = 30 * 86400.0) -> float:
        value = t.get(key.rsplit(".", 1)[-1], default)
        try:
            s = parse_duration_s(value)
        except ValueError:
            self.fail(key, 'a duration such as "250ms", "30s", "5m", "1h" or a number of seconds')
        if not lo <= s <= hi:
            self.fail(key, f"a duration from {lo:g}s to {hi:g}s")
        return s

    def size(self, t: dict, key: str, default: int, lo: int, hi: int) -> int:
        value = t.get(key.rsplit(".", 1)[-1], default)
        n = _parse_size(value)
        if n is None or not lo <= n <= hi:
            self.fail(key, f'a size in bytes from {lo} to {hi}, or "64KiB", "4MiB", "1GiB"')
        return n

    def path(self, t: dict, key: str, default: Path, base: Path) -> Path:
        value = t.get(key.rsplit(".", 1)[-1])
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            self.fail(key, "a file or directory path")
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else base / p

    def endpoints(self, t: dict, key: str) -> tuple[str, ...]:
        value = t.get(key.rsplit(".", 1)[-1], ["localhost:50051"])
        if isinstance(value, str):
            value = [value]
        ok = isinstance(value, list) and value and all(
            isinstance(v, str) and re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", v) for v in value)
        if not ok:
            self.fail(key, 'a list of "host:port" addresses, e.g. ["collector1:50051"]')
        return tuple(value)

    def listen(self, t: dict, key: str) -> str:
        from otsentry.common.metrics import parse_listen

        value = t.get(key.rsplit(".", 1)[-1], "")
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            if value:
                parse_listen(value)
        except ValueError:
            self.fail(key, '"" (off) or "host:port" to listen on, e.g. "127.0.0.1:9108"')
        return value

    def ports(self, t: dict, key: str) -> tuple[int, ...]:
        value = t.get(key.rsplit(".", 1)[-1], [502])
        if isinstance(value, int):
            value = [value]
        if not isinstance(value, list) or not value or not all(
                type(v) is int and 0 < v < 65536 for v in value):
            self.fail(key, "a list of TCP ports from 1 to 65535")
        return tuple(value)


_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|kB|MB|GB)?\s*$")
_SIZE_UNIT = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "kB": 1000, "MB": 10**6,
              "GB": 10**9}


def _parse_size(value: object) -> int | None:
    if type(value) is int:
        return value
    m = _SIZE.match(value) if isinstance(value, str) else None
    return int(m.group(1)) * _SIZE_UNIT[m.group(2) or "B"] if m else None


def _line_of(text: str, key: str) -> int | None:
    """Line (1-based) of dotted ``key`` in TOML ``text``: inside its table when it has one."""
    if not text:
        return None
    lines = text.splitlines()
    section, _, last = key.rpartition(".")
    start, end = 0, len(lines)
    if section:
        head = [i for i, ln in enumerate(lines) if ln.strip() == f"[{section}]"]
        if head:
            start = head[0] + 1
            nxt = [i for i in range(start, len(lines)) if lines[i].lstrip().startswith("[")]
            end = nxt[0] if nxt else len(lines)
    pat = re.compile(rf'^\s*"?{re.escape(last)}"?\s*=')
    for i in range(start, end):
        if pat.match(lines[i]):
            return i + 1
    return start if section and start else None


def _read(path: str | os.PathLike[str] | None) -> tuple[str, str, dict[str, Any]]:
    if path is None:
        return "<defaults>", "", {}
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise ConfigError(name, "", f"a readable TOML file ({exc.strerror})") from None
    try:
        return name, text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(name, "", f"valid TOML ({exc})", int(m.group(1)) if m else None) from None


_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"


def load_agent_config(path: str | os.PathLike[str] | None) -> AgentConfig:
    """Read and check the agent's TOML file (``None``: all defaults).

    Relative paths in the file are relative to the file's folder.

    Raises:
        ConfigError: unreadable file, bad TOML, an unknown key or a bad value.
    """
    name, text, data = _read(path)
    r = _Reader(name, text)
    base = Path(name).parent if path is not None else Path.cwd()
    unknown = sorted(set(data) - {"agent", "capture", "collector", "outbox", "detect", "metrics"})
    if unknown:
        r.fail(unknown[0], "one of the tables [agent], [capture], [collector], [outbox], [detect], "
                           "[metrics]")
    a = r.table(data, "agent", {"site", "name", "state_dir", "baseline", "learn",
                                "status_file_interval", "snapshot_interval"})
    state = r.path(a, "agent.state_dir", Path(os.environ.get("OTSENTRY_STATE_DIR",
                                                             DEFAULT_AGENT_STATE)), base)
    learn = r.duration(a, "agent.learn", 0.0, 0.0) if "learn" in a else None
    baseline = str(r.path(a, "agent.baseline", Path(), base)) if "baseline" in a else ""
    if learn is not None and baseline:
        r.fail("agent.learn", "either agent.learn or agent.baseline, not both")
    return AgentConfig(
        path=name,
        site=r.string(a, "agent.site", "site", _NAME, "a site name: letters, digits, . _ -"),
        name=r.string(a, "agent.name", "agent", _NAME, "an agent name: letters, digits, . _ -"),
        state_dir=state, baseline=baseline, learn_s=learn,
        capture=_capture(r, data), collector=_collector(r, data, state, base),
        outbox=_outbox(r, data), detect=_detect(data, name, text),
        status_file_interval_s=r.duration(a, "agent.status_file_interval", 1.0),
        snapshot_interval_s=r.duration(a, "agent.snapshot_interval", 60.0, 1.0),
        metrics=_metrics(r, data),
    )


def _metrics(r: _Reader, data: dict) -> MetricsConfig:
    m = r.table(data, "metrics", {"listen"})
    return MetricsConfig(listen=r.listen(m, "metrics.listen"))


def _capture(r: _Reader, data: dict) -> CaptureConfig:
    c = r.table(data, "capture", {"interface", "pcap", "replay_speed", "bpf", "ports",
                                  "heuristic"})
    cfg = CaptureConfig(
        interface=r.string(c, "capture.interface", "", r"[\w.:@-]{0,64}", "an interface name"),
        pcap=r.string(c, "capture.pcap", ""),
        replay_speed=r.number(c, "capture.replay_speed", 0.0, 0.0, 1_000_000.0),
        bpf=r.string(c, "capture.bpf", "tcp"),
        ports=r.ports(c, "capture.ports"),
        heuristic=r.boolean(c, "capture.heuristic", True),
    )
    if cfg.interface and cfg.pcap:
        r.fail("capture.pcap", "either capture.interface or capture.pcap, not both")
    return cfg


def _collector(r: _Reader, data: dict, state: Path, base: Path) -> CollectorLink:
    c = r.table(data, "collector", {"endpoints", "ca", "cert", "key", "batch_messages",
                                    "batch_bytes", "batch_linger", "max_unacked_batches",
                                    "ack_timeout", "connect_timeout", "backoff_initial",
                                    "backoff_max", "status_interval", "renew_fraction"})
    tls = state / "tls"
    link = CollectorLink(
        endpoints=r.endpoints(c, "collector.endpoints"),
        ca=r.path(c, "collector.ca", tls / "ca.crt", base),
        cert=r.path(c, "collector.cert", tls / "agent.crt", base),
        key=r.path(c, "collector.key", tls / "agent.key", base),
        batch_messages=r.integer(c, "collector.batch_messages", 500, 1, 100_000),
        batch_bytes=r.size(c, "collector.batch_bytes", 1 << 20, 4096, 64 << 20),
        batch_linger_s=r.duration(c, "collector.batch_linger", 0.05, 0.0),
        max_unacked_batches=r.integer(c, "collector.max_unacked_batches", 8, 1, 1024),
        ack_timeout_s=r.duration(c, "collector.ack_timeout", 30.0, 0.1),
        connect_timeout_s=r.duration(c, "collector.connect_timeout", 10.0, 0.1),
        backoff_initial_s=r.duration(c, "collector.backoff_initial", 0.5),
        backoff_max_s=r.duration(c, "collector.backoff_max", 60.0),
        status_interval_s=r.duration(c, "collector.status_interval", 60.0, 0.1),
        renew_fraction=r.number(c, "collector.renew_fraction", 0.3, 0.0, 0.9),
    )
    if link.backoff_max_s < link.backoff_initial_s:
        r.fail("collector.backoff_max", "a duration at least collector.backoff_initial")
    return link


def _outbox(r: _Reader, data: dict) -> OutboxConfig:
    o = r.table(data, "outbox", {"max_messages", "max_bytes"})
    return OutboxConfig(max_messages=r.integer(o, "outbox.max_messages", 100_000, 10, 10**9),
                        max_bytes=r.size(o, "outbox.max_bytes", 256 << 20, 1 << 20, 1 << 40))


def _detect(data: dict, name: str, text: str) -> Any:
    from otsentry.agent.detect import config_from_dict

    return config_from_dict(data.get("detect", {}), name, text)


def load_collector_config(path: str | os.PathLike[str] | None) -> CollectorConfig:
    """Read and check the collector's TOML file (``None``: all defaults).

    Raises:
        ConfigError: unreadable file, bad TOML, an unknown key or a bad value.
    """
    name, text, data = _read(path)
    r = _Reader(name, text)
    base = Path(name).parent if path is not None else Path.cwd()
    unknown = sorted(set(data) - {"server", "store", "metrics", "reporting", "upstream", "web"})
    if unknown:
        r.fail(unknown[0], "one of the tables [server], [store], [metrics], [reporting], "
                           "[[upstream]], [web]")
    s = r.table(data, "server", {"host", "port", "pki_dir", "max_message_bytes",
                                 "max_clock_skew", "enroll_port"})
    st = r.table(data, "store", {"path", "group_commit_max"})
    home = Path(os.environ.get("OTSENTRY_COLLECTOR_DIR", DEFAULT_COLLECTOR_STATE))
    return CollectorConfig(
        path=name,
        host=r.string(s, "server.host", "127.0.0.1", r"[\w.:\[\]-]{1,255}", "a host name or IP"),
        port=r.integer(s, "server.port", 50051, 0, 65535),
        pki_dir=r.path(s, "server.pki_dir", home / "pki", base),
        max_message_bytes=r.size(s, "server.max_message_bytes", 4 << 20, 64 << 10, 1 << 30),
        max_clock_skew_s=r.duration(s, "server.max_clock_skew", 30.0),
        enroll_port=r.integer(s, "server.enroll_port", 0, 0, 65535),
        store=r.path(st, "store.path", home / "ingest.sqlite", base),
        group_commit_max=r.integer(st, "store.group_commit_max", 64, 1, 10_000),
        metrics=_metrics(r, data),
        reporting=_reporting(r, data, base),
        web=WebConfig(listen=r.listen(r.table(data, "web", {"listen"}), "web.listen")),
    )


def _reporting(r: _Reader, data: dict, base: Path) -> Any:
    from otsentry.common.upstream_config import parse_reporting

    return parse_reporting(r, data, base)
