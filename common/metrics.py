"""Prometheus metrics without a dependency: counters, gauges and the text exposition format.

    from otsentry.common import metrics

    SENT = metrics.REGISTRY.counter("otsentry_upstream_bundles_total",
                                    "STIX bundles sent upstream, by result", labels=("result",))
    SENT.inc(result="ok")
    metrics.REGISTRY.callback("otsentry_upstream_pending", "objects waiting", "gauge",
                              lambda: store.pending())
    server = metrics.MetricsServer(metrics.REGISTRY, "127.0.0.1", 9108)   # GET /metrics
    ...
    server.close()

Both processes use this module: the agent's install stays small (no
prometheus_client), and the collector's modules add their own metrics to the
process-wide :data:`REGISTRY`.  Asking for a metric that exists returns it
(same kind and labels), so a module may register at import or per instance.

Callbacks are read at scrape time, in the HTTP server's thread: they must be
cheap and only read plain attributes (no locks held by the hot path).  A
callback that raises is left out of that scrape and logged; the others are
still served.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/ (text 0.0.4).
"""

from __future__ import annotations

import math
import re
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from otsentry import __version__
from otsentry.common.errors import ConfigError
from otsentry.common.logging import get_logger

__all__ = ["Counter", "Gauge", "Registry", "REGISTRY", "MetricsServer", "CONTENT_TYPE",
           "parse_listen", "serve_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Kind = Literal["counter", "gauge"]
#: What a callback returns: one value, or values by label values (in ``labels`` order).
Reading = float | Mapping[tuple[str, ...], float]
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _escape(text: str, quote: bool) -> str:
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if quote else text


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


class _Metric:
    """One metric family: stored values by label values, or a callback."""

    def __init__(self, name: str, help: str, kind: Kind, labels: Sequence[str],
                 fn: Callable[[], Reading] | None = None) -> None:
        if not _NAME.fullmatch(name) or not all(_LABEL.fullmatch(lb) for lb in labels):
            raise ValueError(f"not a Prometheus metric or label name: {name} {tuple(labels)}")
        self.name, self.help, self.kind = name, help, kind
        self.labels, self.fn = tuple(labels), fn
        self._values: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}
        self._lock = threading.Lock()

    def _key(self, labels: Mapping[str, object]) -> tuple[str, ...]:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes the labels {self.labels}, not {tuple(labels)}")
        return tuple(str(labels[k]) for k in self.labels)

    def _add(self, amount: float, labels: Mapping[str, object]) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def samples(self) -> list[tuple[tuple[str, ...], float]]:
        """(label values, value) pairs, read now."""
        if self.fn is None:
            with self._lock:
                return sorted(self._values.items())
        got = self.fn()
        if isinstance(got, Mapping):
            return sorted((tuple(str(v) for v in k), float(x)) for k, x in got.items())
        return [((), float(got))]

    def render(self, out: list[str]) -> None:
        """Append this family's lines in the text format."""
        out.append(f"# HELP {self.name} {_escape(self.help, quote=False)}")
        out.append(f"# TYPE {self.name} {self.kind}")
        for key, value in self.samples():
            pairs = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in zip(self.labels, key))
            out.append(f"{self.name}{{{pairs}}} {_number(value)}" if pairs
                       else f"{self.name} {_number(value)}")


class Counter(_Metric):
    """A value that only goes up (restarts from 0 with the process)."""

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        """Add ``amount`` (>= 0) to the series of ``labels``."""
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down")
        self._add(amount, labels)


class Gauge(_Metric):
    """A value that goes up and down."""

    def set(self, value: float, **labels: object) -> None:
        """Set the series of ``labels`` to ``value``."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        """Add ``amount`` to the series of ``labels``."""
        self._add(amount, labels)

    def dec(self, amount: float = 1.0, **labels: object) -> None:
        """Subtract ``amount`` from the series of ``labels``."""
        self._add(-amount, labels)


class Registry:
    """The metrics one endpoint serves, in registration order."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _get(self, cls: type[_Metric], name: str, help: str, kind: Kind, labels: Sequence[str],
             fn: Callable[[], Reading] | None = None) -> _Metric:
        with self._lock:
            have = self._metrics.get(name)
            if have is None or fn is not None:
                if have is not None and (have.kind, have.labels) != (kind, tuple(labels)):
                    raise ValueError(f"metric {name} exists as a {have.kind} {have.labels}")
                self._metrics[name] = have = cls(name, help, kind, labels, fn)
            elif type(have) is not cls or have.labels != tuple(labels):
                raise ValueError(f"metric {name} exists as a {have.kind} {have.labels}")
            return have

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        """The counter ``name`` (created on first use); names end in ``_total``."""
        got = self._get(Counter, name, help, "counter", labels)
        assert isinstance(got, Counter)
        return got

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        """The gauge ``name`` (created on first use)."""
        got = self._get(Gauge, name, help, "gauge", labels)
        assert isinstance(got, Gauge)
        return got

    def callback(self, name: str, help: str, kind: Kind, fn: Callable[[], Reading],
                 labels: Sequence[str] = ()) -> None:
        """A metric read by calling ``fn`` at each scrape; replaces an earlier callback of the name.

        ``fn`` returns a number, or ``{(label values...): number}`` for ``labels``.
        """
        self._get(_Metric, name, help, kind, labels, fn)

    def unregister(self, name: str) -> None:
        """Forget ``name`` (e.g. when the object its callback reads is closed)."""
        with self._lock:
            self._metrics.pop(name, None)

    def names(self) -> list[str]:
        """The registered metric names."""
        with self._lock:
            return list(self._metrics)

    def render(self) -> bytes:
        """Every metric in the text exposition format."""
        with self._lock:
            metrics = list(self._metrics.values())
        out: list[str] = []
        for m in metrics:
            lines: list[str] = []
            try:
                m.render(lines)
            except Exception as exc:  # noqa: BLE001 - one broken callback must not hide the rest
                get_logger("common.metrics").error("metric callback failed", metric=m.name,
                                                   error=repr(exc))
                continue
            out.extend(lines)
        return ("\n".join(out) + "\n").encode("utf-8")


#: The process-wide registry that ``serve`` and ``run`` expose.
REGISTRY = Registry()


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"``, ``"[::1]:9108"`` or ``":9108"`` (every address) as (host, port).

    Raises:
        ValueError: not ``host:port`` with a port from 0 to 65535.
    """
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[\w.-]*):(\d{1,5})", value)
    if m is None or int(m.group(2)) > 65535:
        raise ValueError(f"not host:port: {value!r}")
    return m.group(1).strip("[]"), int(m.group(2))


class _Handler(BaseHTTPRequestHandler):
    registry: Registry

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0] not in ("/metrics", "/"):
            self.send_error(404, "only /metrics is served here")
            return
        body = self.registry.render()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        get_logger("common.metrics").debug("scrape", client=self.client_address[0],
                                           request=format % args)


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (port 0 picks a free one), in a daemon thread.

    Raises:
        OSError: the address cannot be bound (in use, not ours); callers turn it
            into a config error naming their ``listen`` key.
    """

    def __init__(self, registry: Registry, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"registry": registry})
        family_server = type("Server", (ThreadingHTTPServer,), {
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET,
            "daemon_threads": True})
        self._httpd = family_server((host, port), handler)
        self.host, self.port = host, self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="otsentry-metrics",
                                        kwargs={"poll_interval": 0.5}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else (self.host or "127.0.0.1")
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def serve_metrics(listen: str, config_path: str, registry: Registry = REGISTRY
                  ) -> MetricsServer | None:
    """Serve ``registry`` on ``listen`` (a checked ``[metrics] listen``); None when it is empty.

    Adds ``otsentry_build_info{version=...} 1``.

    Raises:
        ConfigError: the address cannot be bound, naming ``metrics.listen`` in ``config_path``.
    """
    if not listen:
        return None
    registry.callback("otsentry_build_info", "The running otsentry version", "gauge",
                      lambda: {(__version__,): 1.0}, labels=("version",))
    host, port = parse_listen(listen)
    try:
        server = MetricsServer(registry, host, port)
    except OSError as exc:
        raise ConfigError(config_path, "metrics.listen",
                          f"an address this host can listen on ({listen}: "
                          f"{exc.strerror or exc})") from None
    get_logger("common.metrics").info("metrics listening", url=server.url)
    return server
