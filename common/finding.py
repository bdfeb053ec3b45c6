"""The finding model: facts with evidence, versioned, merged forward.

Rule (DESIGN principle 3): a finding is made at the agent with a stable id and
revision 1.  Repeats are aggregated into the same finding: each update is a new
revision with a larger count and a later ``last_seen``.  Every receiver (the
outbox, the collector, an analyst's tool) keeps one finding per id and merges
each arriving copy into it with :func:`merge_forward`, so copies may arrive
twice, late or out of order and the result is still the same.

Times (DESIGN principle 1, "three times") are integers in nanoseconds since the
Unix epoch, passed in by the caller; nothing here reads a clock:

* capture time: when the packets were on the wire (``first_seen_ns``,
  ``last_seen_ns`` and :attr:`Times.capture_ns`);
* agent time: when the agent made this revision (:attr:`Times.agent_ns`),
  which differs from capture time on replay;
* ingest time: when the collector stored it (:attr:`Times.ingest_ns`, 0 until
  then).

This module is pure code: no I/O, no logging, no clock.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "Severity",
    "Flow",
    "AssetRef",
    "Evidence",
    "Times",
    "Finding",
    "merge_forward",
    "merge_all",
    "finding_id",
    "MAX_PCAP_SLICE",
]

#: Upper bound of a pcap slice carried by one finding (bytes); larger slices are refused.
MAX_PCAP_SLICE = 256 * 1024


class Severity(enum.IntEnum):
    """How urgent a finding is; ordered, so ``Severity.HIGH > Severity.LOW``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Return the severity named ``text`` (case-insensitive).

        Raises:
            ValueError: ``text`` names no severity; the message lists the valid names.
        """
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r}: expected one of {names}") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Flow:
    """The TCP connection a finding was seen on, in Modbus terms.

    Attributes:
        client_ip: address of the Modbus client (master), text form.
        client_port: its TCP port.
        server_ip: address of the Modbus server (slave), text form.
        server_port: its TCP port (usually 502).
        vlan: 802.1Q VLAN id, or ``None`` for untagged traffic.
    """

    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    vlan: int | None = None


@dataclass(frozen=True, slots=True)
class AssetRef:
    """One asset involved in a finding, as the agent's inventory knows it.

    Attributes:
        ip: IP address, text form ("" if unknown).
        mac: MAC address, lower-case colon form ("" if unknown).
        vlan: VLAN id, or ``None``.
        name: the inventory's name for the asset ("" if it has none).
        role: what the asset did in the finding, e.g. ``"client"``, ``"server"``.
    """

    ip: str = ""
    mac: str = ""
    vlan: int | None = None
    name: str = ""
    role: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the finding is based on, for a person to check.

    Attributes:
        flow: the connection, or ``None`` when the finding is not about one flow.
        unit: Modbus unit id, or ``None``.
        function_code: Modbus function code, or ``None``.
        addresses: register or coil addresses involved (protocol addresses, 0-based).
        values: values written or read, in the order of ``addresses`` when they pair up.
        frames: frame numbers (1-based, as Wireshark counts) when read from a file.
        offsets: capture offsets (packet index since the capture started) for live traffic.
        pcap: a bounded pcap slice of the flow around the finding (b"" if none); at
            most :data:`MAX_PCAP_SLICE` bytes.
        details: further detector-specific facts as sorted (key, value) text pairs.
    """

    flow: Flow | None = None
    unit: int | None = None
    function_code: int | None = None
    addresses: tuple[int, ...] = ()
    values: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()
    offsets: tuple[int, ...] = ()
    pcap: bytes = b""
    details: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if len(self.pcap) > MAX_PCAP_SLICE:
            raise ValueError(f"pcap slice of {len(self.pcap)} bytes exceeds {MAX_PCAP_SLICE}")
        if self.details and list(self.details) != sorted(dict(self.details).items()):
            raise ValueError("details must be unique keys in sorted order; use Evidence.make")

    @classmethod
    def make(cls, *, details: dict[str, str] | None = None, **kwargs: object) -> Evidence:
        """Build evidence, taking ``details`` as a plain dict (sorted here)."""
        return cls(details=tuple(sorted(details.items())) if details else (),
                   **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Times:
    """The agent and ingest times of one revision (capture time is on the finding).

    Attributes:
        capture_ns: capture time of the latest packet in this revision.
        agent_ns: the agent's wall clock when it made this revision.
        ingest_ns: the collector's wall clock when it stored it; 0 before that.
    """

    capture_ns: int
    agent_ns: int
    ingest_ns: int = 0


@dataclass(frozen=True, slots=True)
class Finding:
    """A versioned fact with evidence; see the module docstring for the rules.

    Attributes:
        id: stable id made at the agent (see :func:`finding_id`), 1..128 characters.
        revision: 1 for the first report, +1 for each update.
        kind: detector id, e.g. ``"modbus.fc8-restart"``.
        severity: :class:`Severity`.
        techniques: MITRE ATT&CK for ICS technique ids, e.g. ``("T0816",)``.
        first_seen_ns: capture time of the first occurrence.
        last_seen_ns: capture time of the latest occurrence (>= ``first_seen_ns``).
        count: occurrences aggregated so far (>= 1).
        assets: the assets involved.
        summary: one sentence a shift operator understands.
        evidence: :class:`Evidence` of the latest revision.
        times: :class:`Times` of this revision.
    """

    id: str
    revision: int
    kind: str
    severity: Severity
    techniques: tuple[str, ...]
    first_seen_ns: int
    last_seen_ns: int
    count: int
    assets: tuple[AssetRef, ...]
    summary: str
    evidence: Evidence = field(default_factory=Evidence)
    times: Times = field(default_factory=lambda: Times(0, 0))

    def __post_init__(self) -> None:
        if not 0 < len(self.id) <= 128:
            raise ValueError("finding id must be 1..128 characters")
        if self.revision < 1:
            raise ValueError(f"revision must be >= 1, got {self.revision}")
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.last_seen_ns < self.first_seen_ns:
            raise ValueError("last_seen_ns is before first_seen_ns")
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity(self.severity))

    def revise(self, *, last_seen_ns: int, agent_ns: int, add: int = 1, **changes: object) -> Finding:
        """Return the next revision after ``add`` more occurrences up to ``last_seen_ns``.

        Args:
            last_seen_ns: capture time of the newest occurrence; never moves backwards.
            agent_ns: the agent's wall clock now.
            add: occurrences to add to the count (>= 0).
            changes: other fields to replace (e.g. ``severity``, ``evidence``, ``summary``).
        """
        if add < 0:
            raise ValueError("add must be >= 0")
        if not changes.keys() <= _REVISABLE:
            bad = ", ".join(sorted(changes.keys() - _REVISABLE))
            raise TypeError(f"revise() cannot change {bad}")
        last = max(self.last_seen_ns, last_seen_ns)
        # Built field by field, not with dataclasses.replace: agents revise findings often.
        get = changes.get
        return Finding(
            get("id", self.id), self.revision + 1, get("kind", self.kind),  # type: ignore[arg-type]
            get("severity", self.severity), get("techniques", self.techniques),  # type: ignore[arg-type]
            get("first_seen_ns", self.first_seen_ns), last, self.count + add,  # type: ignore[arg-type]
            get("assets", self.assets), get("summary", self.summary),  # type: ignore[arg-type]
            get("evidence", self.evidence), Times(last, agent_ns),  # type: ignore[arg-type]
        )

    def _content_key(self) -> tuple[int, str]:
        # Total order used to pick a winner among copies of equal revision.  The
        # aggregated fields (count, first/last seen) and the ingest time are left
        # out so that merging is associative: they are merged separately.
        body = dataclasses.replace(
            self, count=1, first_seen_ns=0, last_seen_ns=0,
            times=Times(self.times.capture_ns, self.times.agent_ns),
        )
        return (self.revision, repr(body))


#: The fields :meth:`Finding.revise` may be given (it works out the others itself).
_REVISABLE = frozenset(f.name for f in dataclasses.fields(Finding)) - {
    "revision", "count", "last_seen_ns", "times"}


def merge_forward(old: Finding, new: Finding) -> Finding:
    """Merge two copies of the same finding; the order of the arguments does not matter.

    The copy with the highest revision wins (its kind, severity, summary,
    assets and evidence are kept).  ``count`` and ``last_seen_ns`` never go
    backwards and ``first_seen_ns`` never goes forwards, whatever the revisions
    say.  Two different copies with equal revisions are a sender bug; the
    winner is then chosen by a fixed order of their content so that every
    receiver still agrees.  The merge is commutative, associative and
    idempotent, so receivers may see copies twice, late or out of order.  The
    earliest non-zero ingest time is kept.

    Raises:
        ValueError: the two findings have different ids.
    """
    if old.id != new.id:
        raise ValueError(f"cannot merge finding {new.id!r} into {old.id!r}")
    win = new if new._content_key() > old._content_key() else old
    ingest = [t for t in (old.times.ingest_ns, new.times.ingest_ns) if t]
    merged = dataclasses.replace(
        win,
        count=max(old.count, new.count),
        first_seen_ns=min(old.first_seen_ns, new.first_seen_ns),
        last_seen_ns=max(old.last_seen_ns, new.last_seen_ns),
        times=dataclasses.replace(win.times, ingest_ns=min(ingest) if ingest else 0),
    )
    return old if merged == old else merged


def merge_all(findings: Iterable[Finding]) -> dict[str, Finding]:
    """Merge any number of copies into one finding per id."""
    out: dict[str, Finding] = {}
    for f in findings:
        cur = out.get(f.id)
        out[f.id] = f if cur is None else merge_forward(cur, f)
    return out


def finding_id(kind: str, key: Iterable[object], first_seen_ns: int, scope: str = "") -> str:
    """Return a stable finding id from what identifies the aggregation.

    The id is deterministic, so a replayed capture gives the same ids, and it
    is unique per (scope, kind, key, first occurrence).

    Args:
        kind: detector id.
        key: the aggregation key (e.g. client, server, unit, function code).
        first_seen_ns: capture time of the first occurrence.
        scope: the agent's identity, when ids must be unique across agents.

    Returns:
        32 lower-case hex characters.
    """
    text = "\x1f".join([scope, kind, *(str(k) for k in key), str(first_seen_ns)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]
