"""Prometheus metrics: the text exposition parses with the reference parser, served over HTTP."""

from __future__ import annotations

import math
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from otsentry.common.errors import ConfigError
from otsentry.common.metrics import (
    CONTENT_TYPE, MetricsServer, Registry, parse_listen, serve_metrics,
)


def _parse(text: str) -> dict[str, tuple[str, dict[tuple, float]]]:
    """name -> (type, {sorted label items: value}), by prometheus_client's own parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = (fam.type, {tuple(sorted(s.labels.items())): s.value for s in fam.samples})
    return out


def test_counters_gauges_and_labels_round_trip() -> None:
    """Counters, gauges and label values (with quotes, backslashes, newlines) parse back."""
    reg = Registry()
    sent = reg.counter("otsentry_test_sent_total", "Sent, by result", labels=("result",))
    sent.inc(result="ok")
    sent.inc(2, result='we"ird\\\nvalue')
    depth = reg.gauge("otsentry_test_depth", "Queue depth\nsecond line")
    depth.set(7)
    depth.dec(2.5)
    got = _parse(reg.render().decode())
    assert got["otsentry_test_sent"] == ("counter", {(("result", "ok"),): 1.0,
                                                     (("result", 'we"ird\\\nvalue'),): 2.0})
    assert got["otsentry_test_depth"] == ("gauge", {(): 4.5})


def test_callbacks_are_read_at_scrape_time() -> None:
    """A callback's value is whatever it returns at each render; labelled readings too."""
    reg, box = Registry(), {"n": 1}
    reg.callback("otsentry_test_n", "A number", "gauge", lambda: box["n"])
    reg.callback("otsentry_test_by_kind_total", "By kind", "counter",
                 lambda: {("a",): 3, ("b",): math.inf}, labels=("kind",))
    assert _parse(reg.render().decode())["otsentry_test_n"][1] == {(): 1.0}
    box["n"] = 42
    got = _parse(reg.render().decode())
    assert got["otsentry_test_n"][1] == {(): 42.0}
    assert got["otsentry_test_by_kind"][1] == {(("kind", "a"),): 3.0, (("kind", "b"),): math.inf}


def test_a_failing_callback_leaves_the_others() -> None:
    """A callback that raises is left out of the scrape; the rest is served."""
    reg = Registry()
    reg.callback("otsentry_test_broken", "Broken", "gauge", lambda: 1 / 0)
    reg.gauge("otsentry_test_fine", "Fine").set(1)
    text = reg.render().decode()
    assert "otsentry_test_broken" not in text
    assert _parse(text)["otsentry_test_fine"][1] == {(): 1.0}


def test_same_name_returns_the_same_metric_and_misuse_is_refused() -> None:
    """Asking again gives the same metric; another kind, bad labels or a decrease are errors."""
    reg = Registry()
    c = reg.counter("otsentry_test_total", "x")
    assert reg.counter("otsentry_test_total", "x") is c
    with pytest.raises(ValueError):
        reg.gauge("otsentry_test_total", "x")
    with pytest.raises(ValueError):
        c.inc(-1)
    with pytest.raises(ValueError):
        c.inc(kind="a")
    with pytest.raises(ValueError):
        reg.gauge("bad-name", "x")


def test_served_over_http() -> None:
    """GET /metrics returns the exposition with its content type; other paths are 404."""
    reg = Registry()
    reg.counter("otsentry_test_requests_total", "Requests").inc(5)
    server = MetricsServer(reg, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(server.url, timeout=5) as rsp:
            assert rsp.headers["Content-Type"] == CONTENT_TYPE
            got = _parse(rsp.read().decode())
        assert got["otsentry_test_requests"] == ("counter", {(): 5.0})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url.replace("/metrics", "/secret"), timeout=5)
        assert err.value.code == 404
    finally:
        server.close()


def test_a_busy_address_is_a_config_error() -> None:
    """Listening on a port in use fails with a ConfigError naming metrics.listen and the file."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError) as err:
            serve_metrics(f"127.0.0.1:{port}", "/etc/otsentry/agent.toml", Registry())
    assert err.value.key == "metrics.listen" and err.value.path == "/etc/otsentry/agent.toml"
    assert serve_metrics("", "agent.toml", Registry()) is None


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:9108", ("127.0.0.1", 9108)), ("[::1]:9108", ("::1", 9108)),
    (":9108", ("", 9108)), ("metrics.plant.example:0", ("metrics.plant.example", 0)),
])
def test_parse_listen(text: str, want: tuple[str, int]) -> None:
    """host:port, [IPv6]:port and :port (every address)."""
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["9108", "host:99999", "a b:1", "[::1]"])
def test_parse_listen_refuses(text: str) -> None:
    """Anything else is a ValueError."""
    with pytest.raises(ValueError):
        parse_listen(text)
