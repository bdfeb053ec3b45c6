"""Plain functions between the store's feed log and the otsentry.v1 feed: filters, events, JSON.

No I/O beyond the SQL on a connection the caller opened: the gRPC servicer,
the ``feed`` command and the web dashboard all build on these, so a filter
means the same and an event looks the same everywhere.

    filters = filter_from_proto(request.filter)        # MessageError on bad input
    with read(engine) as conn:
        page = read_page(conn, after, filters)
    lines = [json.dumps(event_to_json(e)) for e in page.events]
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import MessageToDict
from sqlalchemy import Connection, func, select

from otsentry.collector.store import FeedEntry, FeedFilter, head, read_feed
from otsentry.collector.store import _schema as S
from otsentry.common.errors import MessageError
from otsentry.common.finding import Severity
from otsentry.v1 import common_pb2, convert, feed_pb2, finding_pb2, inventory_pb2, status_pb2

__all__ = [
    "KINDS", "MAX_VALUES", "Page", "filter_from_proto", "filter_to_proto", "read_page",
    "entry_to_event", "event_frame", "event_to_json", "event_line", "cursor_since",
    "cursor_until", "parse_time",
]

#: Store entry kind <-> wire EventKind.
KINDS: Mapping[str, int] = {"finding": feed_pb2.EVENT_KIND_FINDING,
                            "incident": feed_pb2.EVENT_KIND_INCIDENT,
                            "asset": feed_pb2.EVENT_KIND_ASSET,
                            "agent": feed_pb2.EVENT_KIND_AGENT}
_KIND_NAMES = {v: k for k, v in KINDS.items()}

#: Most values per repeated filter field; each value is matched with LIKE.
MAX_VALUES = 64
# Values become LIKE patterns against ",a,b," lists: no separators or wildcards.
_VALUE = re.compile(r"^[^,%\s]{1,200}$")


def _values(field: str, values: Iterable[str]) -> tuple[str, ...]:
    out = tuple(values)
    if len(out) > MAX_VALUES:
        raise MessageError(f"at most {MAX_VALUES} values", f"filter.{field}")
    for v in out:
        if not _VALUE.match(v):
            raise MessageError(f"{v!r} is not a name (1-200 characters, no comma, % or space)",
                               f"filter.{field}")
    return out


def filter_from_proto(f: feed_pb2.FeedFilter) -> FeedFilter:
    """The store's filter for a wire filter.

    Raises:
        MessageError: too many values, a value that is not a plain name, an unknown
            kind or severity.
    """
    kinds = []
    for k in f.kinds:
        if k not in _KIND_NAMES:
            raise MessageError(f"unknown or unspecified event kind {k}", "filter.kinds")
        kinds.append(_KIND_NAMES[k])
    sev = None
    if f.min_severity:
        sev = int(convert.severity_from_proto(f.min_severity, "filter.min_severity"))
    return FeedFilter(kinds=tuple(kinds), sites=_values("sites", f.sites), min_severity=sev,
                      techniques=_values("techniques", f.techniques),
                      detectors=_values("detectors", f.detectors),
                      assets=_values("assets", f.assets), new_only=f.new_only)


def filter_to_proto(f: FeedFilter) -> feed_pb2.FeedFilter:
    """The wire filter for a store filter (what a client sends)."""
    return feed_pb2.FeedFilter(
        sites=f.sites, techniques=f.techniques, detectors=f.detectors, assets=f.assets,
        kinds=[KINDS[k] for k in f.kinds], new_only=f.new_only,
        min_severity=0 if f.min_severity is None else convert.severity_to_proto(
            Severity(f.min_severity)))


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One read of the feed.

    Attributes:
        events: matching events, oldest first.
        scanned: every entry up to this cursor was looked at (matching or not):
            the next read starts here.
        head: the newest cursor committed when the read began.
    """

    events: list[feed_pb2.FeedEvent]
    scanned: int
    head: int


def read_page(conn: Connection, after: int, filters: FeedFilter, *, limit: int = 500,
              end: int | None = None, pcap: bool = True) -> Page:
    """Matching events with a cursor in ``(after, end]``, at most ``limit``.

    Without ``pcap``, findings come without their pcap slice (see :func:`entry_to_event`).

    The head is read first: whatever the read returns, every entry up to that
    head was committed before it (cursors follow commit order), so a short
    page has scanned the log up to the head even if nothing matched, and a
    filtered reader never rescans what it skipped.
    """
    top = head(conn)
    entries = read_feed(conn, after, limit, filters)
    full = len(entries) == limit
    if end is not None:
        entries = [e for e in entries if e.cursor <= end]
    scanned = entries[-1].cursor if full and entries else max(top, after)
    if end is not None:
        scanned = min(scanned, max(end, after))
    return Page([entry_to_event(e, pcap=pcap) for e in entries], scanned, top)


def cursor_since(conn: Connection, since_ns: int) -> int:
    """The cursor to resume after so as to start at the first entry ingested at or after ``since_ns``."""
    first = conn.execute(select(func.min(S.feed.c.cursor))
                         .where(S.feed.c.ingest_ns >= since_ns)).scalar()
    return head(conn) if first is None else first - 1


def cursor_until(conn: Connection, until_ns: int) -> int:
    """The last cursor of an entry ingested at or before ``until_ns`` (0: none)."""
    return conn.execute(select(func.max(S.feed.c.cursor))
                        .where(S.feed.c.ingest_ns <= until_ns)).scalar() or 0


# --- store entries -> wire events ---------------------------------------------------------


def _marks(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def _finding(ev: feed_pb2.FeedEvent, body: dict[str, Any], pcap: bool) -> None:
    ev.finding.ParseFromString(body["body"])
    if not pcap and ev.finding.HasField("evidence"):
        ev.finding.evidence.ClearField("pcap")


def _incident(ev: feed_pb2.FeedEvent, r: dict[str, Any]) -> None:
    ev.incident.CopyFrom(feed_pb2.Incident(
        id=r["id"], key=r["key"], rule=r["rule"], title=r["title"],
        severity=convert.severity_to_proto(Severity(r["severity"])), status=r["status"],
        sites=_marks(r["sites"]), source_ip=r["source_ip"], techniques=_marks(r["techniques"]),
        member_count=r["member_count"], first_ns=r["first_ns"], last_ns=r["last_ns"]))


def _asset(ev: feed_pb2.FeedEvent, r: dict[str, Any], changed: bool) -> None:
    a = ev.asset
    a.id, a.site, a.first_seen_ns, a.last_seen_ns = r["id"], r["site"], r["first_seen_ns"], r["last_seen_ns"]
    a.key.CopyFrom(common_pb2.AssetKey(ip=r["ip"], mac=r["mac"],
                                       vlan=None if r["vlan"] < 0 else r["vlan"]))
    if r["unit"] >= 0:
        a.unit = r["unit"]
    a.attributes.update({k: str(v) for k, (v, _) in json.loads(r["attributes"]).items()})
    a.device_id.extend(inventory_pb2.DeviceIdObject(object_id=int(k), value=bytes.fromhex(v))
                       for k, (v, _) in sorted(json.loads(r["device_id"]).items(),
                                               key=lambda kv: int(kv[0])))
    a.removed = r["removed_ns"] > r["last_seen_ns"]
    a.device_id_changed = changed


def _agent(ev: feed_pb2.FeedEvent, r: dict[str, Any]) -> None:
    ev.agent.skew_ns = r["skew_ns"]
    ev.agent.status.CopyFrom(convert.parse(status_pb2.AgentStatus, r["body"]))


def entry_to_event(e: FeedEntry, *, pcap: bool = True) -> feed_pb2.FeedEvent:
    """The wire event of one store entry (no body if retention removed the row).

    Without ``pcap``, a finding's ``evidence.pcap`` (its pcap slice) is left empty.
    """
    ev = feed_pb2.FeedEvent(cursor=e.cursor, kind=KINDS.get(e.kind, 0), ref=e.ref, new=e.new,
                            ingest_ns=e.ingest_ns)
    if e.kind != "incident":
        ev.site, ev.agent_id = e.site, e.agent_id
    if e.body:
        if e.kind == "finding":
            _finding(ev, e.body, pcap)
        elif e.kind == "incident":
            _incident(ev, e.body)
        elif e.kind == "asset":
            _asset(ev, e.body, e.detector == "device-id-change")
        elif e.kind == "agent":
            _agent(ev, e.body)
    return ev


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def event_frame(ev: feed_pb2.FeedEvent) -> bytes:
    """``ev`` encoded as one element of ``FeedBatch.events``.

    A serialized FeedBatch is its elements' frames one after the other
    (field 1, length-delimited), so an event serialized once can be joined
    into the batches of any number of subscribers.
    """
    data = ev.SerializeToString()
    return b"\x0a" + _varint(len(data)) + data


# --- wire events -> JSON lines and text -----------------------------------------------------


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).isoformat(timespec="milliseconds")


def _severity_name(value: int) -> str:
    try:
        return str(convert.severity_from_proto(value))
    except MessageError:
        return "unknown"


def event_to_json(ev: feed_pb2.FeedEvent) -> dict[str, Any]:
    """One JSON-lines object: common fields on top, the body under its kind's name.

    The body follows the proto3 JSON mapping with the .proto field names (so
    64-bit integers inside it are strings and bytes are base64); ``severity``
    is repeated on top as a word for findings and incidents.
    """
    body = ev.WhichOneof("body")
    if body == "progress":
        return {"cursor": ev.cursor, "kind": "progress", "live": ev.progress.live}
    out: dict[str, Any] = {"cursor": ev.cursor, "kind": _KIND_NAMES.get(ev.kind, "unknown"),
                           "new": ev.new, "ref": ev.ref, "ingested": _iso(ev.ingest_ns),
                           "site": ev.site, "agent_id": ev.agent_id}
    if body is None:
        out["pruned"] = True
        return out
    msg = getattr(ev, body)
    if body in ("finding", "incident"):
        out["severity"] = _severity_name(msg.severity)
    out[body] = MessageToDict(msg, preserving_proto_field_name=True)
    return out


def _line_finding(f: finding_pb2.Finding) -> str:
    return f"{_severity_name(f.severity):<8}  {f.kind:<28} {','.join(f.techniques):<12} {f.summary}"


def _line_incident(i: feed_pb2.Incident) -> str:
    return (f"{_severity_name(i.severity):<8}  incident {i.id} ({i.rule}, {','.join(i.sites)}, "
            f"{i.member_count} members) {i.title}")


def _line_asset(a: feed_pb2.Asset) -> str:
    what = "device identity changed" if a.device_id_changed else "removed" if a.removed else "changed"
    unit = f" unit {a.unit}" if a.HasField("unit") else ""
    return f"{'-':<8}  asset {a.key.ip}{unit} {what} " + " ".join(
        f"{k}={v}" for k, v in sorted(a.attributes.items()) if k in ("role", "vendor", "name"))


def _line_agent(h: feed_pb2.AgentHealth) -> str:
    st = h.status
    drops = sum(c.kernel_drops + c.interface_drops + c.libpcap_drops for c in st.capture)
    return (f"{'-':<8}  agent health: {st.mode or '?'}, outbox {st.outbox_depth}, "
            f"capture drops {drops}, skew {h.skew_ns / 1e9:+.1f} s")


_LINES = {"finding": _line_finding, "incident": _line_incident, "asset": _line_asset,
          "agent": _line_agent}


def event_line(ev: feed_pb2.FeedEvent) -> str | None:
    """One line for people (``feed tail`` without ``--json``); None for progress events."""
    body = ev.WhichOneof("body")
    if body == "progress":
        return None
    when = dt.datetime.fromtimestamp(ev.ingest_ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    where = ev.site or "-"
    text = _LINES[body](getattr(ev, body)) if body else f"{'-':<8}  (removed by retention)"
    return f"{ev.cursor:>8}  {when}  {where:<12} {text}"


# --- times on the command line --------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now_ns: int) -> int:
    """``2024-05-01``, ``2024-05-01T12:00:00`` (UTC unless it names a zone), ``now``, or
    ``90m``/``2h``/``7d`` ago, as ns since the epoch.

    Raises:
        ValueError: none of these; the message shows the accepted forms.
    """
    t = text.strip()
    if t == "now":
        return now_ns
    m = _RELATIVE.match(t)
    if m:
        return now_ns - int(float(m.group(1)) * _UNIT_S[m.group(2)] * 1e9)
    try:
        when = dt.datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (expected e.g. 2024-05-01, "
                         "2024-05-01T12:00:00Z, now, 90m, 2h or 7d)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp() * 1e9)
