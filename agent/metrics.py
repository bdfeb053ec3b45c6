"""The running agent's Prometheus metrics (``[metrics] listen``; off by default).

Every metric is a callback that reads what the agent already counts for its
status file (:meth:`otsentry.agent.run_cmd.Agent.status_dict`): the capture
thread's counters, the pipeline's flows, the findings put in the outbox, the
outbox depth and the shipper's state.  Nothing is counted twice, and the hot
path does no extra work for metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otsentry.common.metrics import REGISTRY, MetricsServer, Reading, Registry, serve_metrics

__all__ = ["register_agent", "start_agent_metrics"]


def _stat(name: str) -> Callable[[Any], float]:
    return lambda a: float(getattr(getattr(a._src, "stats", None), name, 0) or 0)


def _outbox(key: str) -> Callable[[Any], float]:
    return lambda a: float(a._outbox_stats.get(key, 0) or 0)


def _shipper(key: str, scale: float = 1.0) -> Callable[[Any], float]:
    return lambda a: float(getattr(a.shipper.state, key)) * scale


def _dropped(a: Any) -> Reading:
    return {(str(k),): float(v) for k, v in dict(a._outbox_stats.get("dropped", {})).items()}


#: name, help, kind, reader of the Agent.
_METRICS: list[tuple[str, str, str, Callable[[Any], Reading]]] = [
    ("otsentry_agent_packets_total", "Packets read from the interface or capture file", "counter",
     _stat("packets")),
    ("otsentry_agent_bytes_total", "Bytes of the packets read", "counter", _stat("bytes_read")),
    ("otsentry_agent_kernel_drops_total", "Packets the kernel dropped before the agent read them",
     "counter", _stat("kernel_drops")),
    ("otsentry_agent_interface_drops_total", "Packets the network interface dropped", "counter",
     _stat("if_drops")),
    ("otsentry_agent_capture_running", "1 while capture runs, 0 once it stopped or failed", "gauge",
     lambda a: 0.0 if a._capture_done.is_set() else 1.0),
    ("otsentry_agent_flows_active", "TCP flows being followed now", "gauge",
     lambda a: float(a._pipe.active_flows()) if a._pipe is not None else 0.0),
    ("otsentry_agent_flows_total", "TCP flows seen since start", "counter",
     lambda a: float(getattr(a._pipe, "flows_created", 0))),
    ("otsentry_agent_finding_revisions_total", "Finding revisions put in the outbox", "counter",
     lambda a: float(a.findings_out)),
    ("otsentry_agent_inventory_changes_total", "Inventory changes put in the outbox", "counter",
     lambda a: float(a.changes_out)),
    ("otsentry_agent_outbox_depth", "Messages in the outbox not yet acknowledged by a collector",
     "gauge", _outbox("depth")),
    ("otsentry_agent_outbox_bytes", "Bytes of the messages in the outbox", "gauge",
     _outbox("bytes")),
    ("otsentry_agent_shipper_connected", "1 while a stream to a collector is open", "gauge",
     _shipper("connected")),
    ("otsentry_agent_shipper_connects_total", "Streams opened to a collector", "counter",
     _shipper("connects")),
    ("otsentry_agent_shipper_batches_sent_total", "Batches sent to a collector", "counter",
     _shipper("batches_sent")),
    ("otsentry_agent_shipper_messages_sent_total", "Messages sent to a collector", "counter",
     _shipper("messages_sent")),
    ("otsentry_agent_shipper_messages_resent_total", "Messages sent again after a reconnect",
     "counter", _shipper("messages_resent")),
    ("otsentry_agent_shipper_last_ack_timestamp_seconds",
     "Unix time of the collector's last acknowledgement (0: none yet)", "gauge",
     _shipper("last_ack_ns", 1e-9)),
]


def register_agent(agent: Any, registry: Registry = REGISTRY) -> None:
    """Expose ``agent`` (an :class:`~otsentry.agent.run_cmd.Agent` with its shipper) in ``registry``."""
    for name, help_, kind, read in _METRICS:
        registry.callback(name, help_, kind, lambda read=read: read(agent))  # type: ignore[arg-type]
    registry.callback("otsentry_agent_outbox_dropped_total",
                      "Messages dropped from a full outbox, by kind (finding-SEVERITY, status)",
                      "counter", lambda: _dropped(agent), labels=("kind",))


def start_agent_metrics(agent: Any) -> MetricsServer | None:
    """Serve the agent's metrics on its ``[metrics] listen``; None when off.

    Raises:
        ConfigError: the address cannot be bound.
    """
    if not agent.cfg.metrics.listen:
        return None
    register_agent(agent)
    return serve_metrics(agent.cfg.metrics.listen, agent.cfg.path)
