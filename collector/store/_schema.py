"""The collector's tables, in SQLAlchemy Core: one schema for SQLite and PostgreSQL.

Rules of this module:

* **Times are integers in ns since the Unix epoch** (DESIGN principle 1).
  ``*_ingest_ns`` and ``updated_ns`` are the collector's clock; retention and
  correlation windows use them.  Capture times keep the agent's names
  (``first_seen_ns``, ``last_seen_ns``).
* **No NULL in unique keys**: an untagged VLAN and an asset-level (no unit)
  inventory row are stored as -1, because NULLs never conflict in a unique index.
* **Lock order** (PostgreSQL, see :mod:`._ingest`): sites, then agents, then the
  one-row ``feed_seq``; every transaction that takes more than one of them takes
  them in this order, so replicas cannot deadlock on them.

The Alembic migrations in ``otsentry.collector.migrations`` create exactly
these tables; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
                        BigInteger,
                        Column,
                        ForeignKey,
                        Index,
                        Integer,
                        LargeBinary,
                        MetaData,
                        PrimaryKeyConstraint,
                        SmallInteger,
                        Table,
                        Text,
                        UniqueConstraint,
)

__all__ = [
                        "METADATA",
                        "NONE",
                        "agent_status",
                        "agents",
                        "asset_history",
                        "assets",
                        "feed",
                        "feed_seq",
                        "findings",
                        "incident_members",
                        "incident_declarations",
                        "incident_notes",
                        "incidents",
                        "jobs",
                        "sites",
                        "streams",
                        "upstream_reports",
]

#: Stands for "no VLAN" and "no unit" in unique keys.
NONE = -1

#: BIGINT on PostgreSQL; INTEGER (the rowid alias, so it autoincrements) on SQLite.
_ID = BigInteger().with_variant(Integer(), "sqlite")

METADATA = MetaData()

sites = Table(
    "sites", METADATA,
    Column("name", Text, primary_key=True),
    Column("first_ingest_ns", BigInteger, nullable=False),
)

agents = Table(
    "agents", METADATA,
    Column("agent_id", Text, primary_key=True),  # site/S/agent/A
    Column("site", Text, ForeignKey("sites.name"), nullable=False),
    Column("name", Text, nullable=False),
    Column("version", Text, nullable=False, server_default=""),
    Column("mode", Text, nullable=False, server_default=""),
    Column("cert_serial", Text, nullable=False, server_default=""),
    Column("cert_fingerprint", Text, nullable=False, server_default=""),
    Column("first_ingest_ns", BigInteger, nullable=False),
    Column("last_ingest_ns", BigInteger, nullable=False),
    Column("skew_ns", BigInteger, nullable=False, server_default="0"),
    Column("status_ingest_ns", BigInteger, nullable=False, server_default="0"),
    Column("status", LargeBinary, nullable=True),  # the latest otsentry.v1.AgentStatus
)

agent_status = Table(
    "agent_status", METADATA,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("agent_id", Text, ForeignKey("agents.agent_id"), nullable=False),
    Column("ingest_ns", BigInteger, nullable=False),
    Column("agent_clock_ns", BigInteger, nullable=False),
    Column("skew_ns", BigInteger, nullable=False),
    Column("version", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("outbox_depth", BigInteger, nullable=False),
    Column("outbox_dropped", BigInteger, nullable=False),
    Column("capture_drops", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Index("agent_status_by_agent", "agent_id", "ingest_ns"),
    Index("agent_status_by_ingest", "ingest_ns"),
)

# Per (agent, epoch): the highest sequence number committed (the dedup high-water mark).
streams = Table(
    "streams", METADATA,
    Column("agent_id", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),  # messages stored (seq == count: none doubled)
    Column("updated_ns", BigInteger, nullable=False),
    PrimaryKeyConstraint("agent_id", "epoch"),
)

findings = Table(
    "findings", METADATA,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("agent_id", Text, nullable=False),
    Column("finding_id", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first_seen_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    Column("source_ip", Text, nullable=False),  # the Modbus client, "" if none
    Column("techniques", Text, nullable=False),  # ",T0846,T0855," for LIKE filters
    Column("assets", Text, nullable=False),  # ",10.0.0.5,10.0.0.9," likewise
    Column("summary", Text, nullable=False),
    Column("first_ingest_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),  # ingest time of the latest change
    Column("body", LargeBinary, nullable=False),  # otsentry.v1.Finding, merged
    UniqueConstraint("agent_id", "finding_id", name="findings_agent_finding"),
    Index("findings_by_updated", "updated_ns"),
    Index("findings_by_site_source", "site", "source_ip", "updated_ns"),
    Index("findings_by_source", "source_ip", "updated_ns"),
    Index("findings_by_kind", "kind", "first_ingest_ns"),
)

assets = Table(
    "assets", METADATA,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("site", Text, ForeignKey("sites.name"), nullable=False),
    Column("ip", Text, nullable=False),
    Column("mac", Text, nullable=False),
    Column("vlan", Integer, nullable=False),  # NONE: untagged
    Column("unit", Integer, nullable=False),  # NONE: the asset itself
    Column("attributes", Text, nullable=False),  # JSON {key: [value, capture_ns]}
    Column("device_id", Text, nullable=False),  # JSON {object_id: [hex, capture_ns]}
    Column("first_seen_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    Column("removed_ns", BigInteger, nullable=False, server_default="0"),
    Column("first_ingest_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    UniqueConstraint("site", "ip", "mac", "vlan", "unit", name="assets_key"),
)

asset_history = Table(
    "asset_history", METADATA,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("asset", BigInteger, ForeignKey("assets.id"), nullable=False),
    Column("site", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("change", SmallInteger, nullable=False),  # otsentry.v1.ChangeKind
    Column("revision", BigInteger, nullable=False),
    Column("capture_ns", BigInteger, nullable=False),
    Column("ingest_ns", BigInteger, nullable=False),
    Column("attributes", Text, nullable=False),  # JSON of the delta's attributes
    Column("device_id", Text, nullable=False),  # JSON of the delta's device id objects
    Column("device_id_change", Text, nullable=False, server_default=""),  # pattern, "" if none
    Index("asset_history_by_asset", "asset", "id"),
    Index("asset_history_by_ingest", "ingest_ns"),
    Index("asset_history_by_pattern", "device_id_change", "ingest_ns"),
)

incidents = Table(
    "incidents", METADATA,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False, unique=True),  # the correlation key (ON CONFLICT)
    Column("rule", Text, nullable=False),
    Column("scope", Text, nullable=False),  # what the rule matched on, e.g. "plant1|10.0.0.5"
    Column("title", Text, nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("worst", SmallInteger, nullable=False),  # the worst member's, before any rise
    Column("status", Text, nullable=False, server_default="open"),
    Column("sites", Text, nullable=False),  # ",plant1,plant2,"
    Column("site_count", Integer, nullable=False),
    Column("source_ip", Text, nullable=False),
    Column("techniques", Text, nullable=False),  # ",T0846,T0855," in order of first sight
    Column("member_count", Integer, nullable=False),
    Column("first_ns", BigInteger, nullable=False),  # ingest times of the members
    Column("last_ns", BigInteger, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Index("incidents_by_scope", "rule", "scope", "last_ns"),
)

incident_members = Table(
    "incident_members", METADATA,
    Column("incident", BigInteger, ForeignKey("incidents.id"), nullable=False),
    Column("member_kind", Text, nullable=False),  # "finding" or "asset-change"
    Column("ref", BigInteger, nullable=False),  # findings.id or asset_history.id
    Column("site", Text, nullable=False),
    Column("added_ns", BigInteger, nullable=False),
    PrimaryKeyConstraint("incident", "member_kind", "ref"),
    Index("incident_members_by_ref", "member_kind", "ref"),
)

# The commit-ordered feed log: ``cursor`` is handed out by ``feed_seq`` inside the
# writing transaction, after every other lock, so cursors follow commit order
# with no gaps (see :mod:`._feed`).
feed = Table(
    "feed", METADATA,
    Column("cursor", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", Text, nullable=False),  # "finding", "asset", "agent", "incident"
    Column("ref", BigInteger, nullable=False),  # id in the kind's table
    Column("new", SmallInteger, nullable=False),  # 1: first time this ref appears
    Column("site", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("severity", SmallInteger, nullable=True),
    Column("detector", Text, nullable=False),  # finding kind or incident rule
    Column("techniques", Text, nullable=False),
    Column("assets", Text, nullable=False),
    Column("ingest_ns", BigInteger, nullable=False),
    Index("feed_by_ingest", "ingest_ns"),
)

feed_seq = Table(
    "feed_seq", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)

# Background jobs: one row each, taken with FOR UPDATE SKIP LOCKED by whichever
# replica gets there first; ``cursor`` is the job's position in the feed.
jobs = Table(
    "jobs", METADATA,
    Column("name", Text, primary_key=True),
    Column("cursor", BigInteger, nullable=False, server_default="0"),
    Column("run_ns", BigInteger, nullable=False, server_default="0"),
    Column("holder", Text, nullable=False, server_default=""),
)

# Reporting upstream (otsentry.collector.upstream): when an incident's reporting clock
# started, analysts' notes, and one row per (incident, recipient, stage) that is
# both the durable delivery queue and the stage's status.
incident_declarations = Table(
    "incident_declarations", METADATA,
    Column("incident", BigInteger, ForeignKey("incidents.id"), primary_key=True,
           autoincrement=False),
    Column("declared_ns", BigInteger, nullable=False),  # the clocks start here
    Column("by", Text, nullable=False),  # the analyst, or "rule:NAME" for automatic rules
)

incident_notes = Table(
    "incident_notes", METADATA,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("incident", BigInteger, ForeignKey("incidents.id"), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("author", Text, nullable=False),
    Column("text", Text, nullable=False),
    Index("incident_notes_by_incident", "incident", "id"),
)

upstream_reports = Table(
    "upstream_reports", METADATA,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("incident", BigInteger, ForeignKey("incidents.id"), nullable=False),
    Column("recipient", Text, nullable=False),
    Column("stage", Text, nullable=False),  # early-warning, notification, final-report
    Column("due_ns", BigInteger, nullable=False),
    Column("send_ns", BigInteger, nullable=False),  # queued for delivery from then on
    # waiting (before send_ns), queued, sending, sent (awaiting the server's status),
    # acknowledged, failed (retried at next_try_ns)
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("version_ns", BigInteger, nullable=False, server_default="0"),  # content in bundle
    Column("bundle", Text, nullable=False, server_default=""),  # the STIX objects (JSON list)
    Column("parts", Integer, nullable=False, server_default="0"),
    Column("parts_done", Integer, nullable=False, server_default="0"),
    Column("status_ids", Text, nullable=False, server_default=""),  # TAXII status ids, ","
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_try_ns", BigInteger, nullable=False, server_default="0"),
    Column("lease_ns", BigInteger, nullable=False, server_default="0"),  # a replica is pushing
    Column("sent_ns", BigInteger, nullable=False, server_default="0"),
    Column("acked_ns", BigInteger, nullable=False, server_default="0"),
    Column("warned", SmallInteger, nullable=False, server_default="0"),  # 1: due soon, 2: overdue
    Column("updated_ns", BigInteger, nullable=False),
    UniqueConstraint("incident", "recipient", "stage", name="upstream_reports_key"),
    Index("upstream_reports_by_status", "status", "next_try_ns"),
)
