"""Tests of the agent's durable outbox, on real SQLite files, including kill -9."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otsentry.agent.outbox import LOSS_KIND, Outbox
from otsentry.common.errors import OutboxError
from otsentry.common.finding import Finding, Severity
from otsentry.v1 import convert, ingest_pb2, status_pb2

REPO = Path(__file__).resolve().parents[2]


def _finding(fid: str = "f1", rev: int = 1, sev: Severity = Severity.HIGH) -> Finding:
    return Finding(id=fid, revision=rev, kind="k", severity=sev, techniques=("T0816",),
                   first_seen_ns=1, last_seen_ns=rev, count=rev, assets=(), summary="s")


def _decode(body: bytes) -> ingest_pb2.Envelope:
    return convert.parse(ingest_pb2.Envelope, body)


def _status(n: int = 0) -> ingest_pb2.Envelope:
    return ingest_pb2.Envelope(queued_ns=n, status=status_pb2.AgentStatus(version=str(n)))


@pytest.fixture(name="box")
def _box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.db", clock=lambda: 42)


class TestEpoch:
    def test_new_file_new_epoch(self, tmp_path: Path) -> None:
        """A new state dir gets a new random epoch; reopening keeps it."""
        a = Outbox(tmp_path / "a.db")
        b = Outbox(tmp_path / "b.db")
        assert a.epoch != b.epoch and a.epoch > 0
        a.close()
        assert Outbox(tmp_path / "a.db").epoch == a.epoch

    def test_not_an_outbox(self, tmp_path: Path) -> None:
        """A file that is not SQLite is refused with its name."""
        bad = tmp_path / "x.db"
        bad.write_bytes(b"garbage" * 100)
        with pytest.raises(OutboxError, match="x.db"):
            Outbox(bad)


class TestSequence:
    def test_take_ack(self, box: Outbox) -> None:
        """take numbers messages 1, 2, 3 without gaps; ack removes them cumulatively."""
        for i in range(5):
            box.put_envelope(_status(i))
        first = box.take(max_messages=3)
        assert [e.seq for e in first] == [1, 2, 3]
        assert [_decode(e.body).status.version for e in first] == ["0", "1", "2"]
        assert [e.seq for e in box.take()] == [4, 5]
        assert box.depth() == 5
        assert box.ack(3) == 3 and box.depth() == 2
        assert [e.seq for e in box.unacked()] == [4, 5]
        assert [e.seq for e in box.unacked(after_seq=4)] == [5]

    def test_ack_unknown(self, box: Outbox) -> None:
        """An ack for a seq never handed out is an error."""
        with pytest.raises(OutboxError, match="never sent"):
            box.ack(1)

    def test_byte_bound_of_take(self, box: Outbox) -> None:
        """take stops before max_bytes but always takes at least one message."""
        for i in range(3):
            box.put("status", b"x" * 100)
        assert len(box.take(max_bytes=150)) == 1
        assert len(box.take(max_bytes=10)) == 1

    def test_replay_after_restart(self, tmp_path: Path) -> None:
        """Unacked messages come back with the same (epoch, seq) after a restart."""
        box = Outbox(tmp_path / "o.db")
        for i in range(4):
            box.put_envelope(_status(i))
        taken = box.take(max_messages=3)
        box.ack(1)
        box.close()
        again = Outbox(tmp_path / "o.db")
        assert again.unacked() == taken[1:]
        assert [e.seq for e in again.take()] == [4]


class TestRevisions:
    def test_newer_revision_supersedes_pending(self, box: Outbox) -> None:
        """A new revision replaces a pending older one; a stale revision is ignored."""
        box.put_finding(_finding(rev=1))
        box.put_envelope(_status())
        box.put_finding(_finding(rev=3))
        box.put_finding(_finding(rev=2))
        entries = box.take()
        assert len(entries) == 2
        assert _decode(entries[0].body).finding.revision == 3

    def test_in_flight_revision_kept(self, box: Outbox) -> None:
        """A revision already numbered is not touched; the new one gets its own seq."""
        box.put_finding(_finding(rev=1))
        box.take()
        box.put_finding(_finding(rev=2))
        assert [(_decode(e.body).finding.revision, e.seq) for e in box.take()] == [(2, 2)]
        assert box.depth() == 2


class TestOverflow:
    def test_lowest_priority_oldest_first(self, tmp_path: Path) -> None:
        """Statuses go first, then the oldest of the lowest severity, and the loss is reported."""
        box = Outbox(tmp_path / "o.db", max_messages=4, clock=lambda: 5)
        box.put_envelope(_status(1))
        box.put_finding(_finding("low1", sev=Severity.LOW))
        box.put_finding(_finding("low2", sev=Severity.LOW))
        box.put_finding(_finding("crit", sev=Severity.CRITICAL))
        box.put_finding(_finding("high", sev=Severity.HIGH))  # drops the status
        box.put_finding(_finding("med", sev=Severity.MEDIUM))  # drops low1
        kept = [_decode(e.body) for e in box.take(max_messages=100)]
        ids = [e.finding.id for e in kept]
        assert set(ids) == {"low2", "crit", "high", "med", f"outbox-overflow-{box.epoch:x}"}
        loss = next(e.finding for e in kept if e.finding.kind == LOSS_KIND)
        assert loss.count == 2 and loss.revision == 2
        assert dict(loss.evidence.details) == {"status": "1", "finding-low": "1"}
        assert "dropped 2 messages" in loss.summary
        assert box.stats()["dropped"] == {"status": 1, "finding-low": 1}

    def test_newcomer_dropped_when_lowest(self, tmp_path: Path) -> None:
        """When everything queued ranks higher, the new low message is the one dropped, and counted."""
        box = Outbox(tmp_path / "o.db", max_messages=2)
        box.put_finding(_finding("a", sev=Severity.CRITICAL))
        box.put_finding(_finding("b", sev=Severity.CRITICAL))
        box.put_envelope(_status())
        assert box.stats()["dropped"] == {"status": 1}
        kinds = sorted(_decode(e.body).finding.kind for e in box.take())
        assert kinds == sorted([LOSS_KIND, "k", "k"])

    def test_byte_bound(self, tmp_path: Path) -> None:
        """The byte bound is enforced like the message bound."""
        box = Outbox(tmp_path / "o.db", max_bytes=1000)
        for _ in range(20):
            box.put("status", b"x" * 100)
        assert box.stats()["bytes"] <= 1000 + 400  # plus the loss report
        assert box.stats()["dropped"]["status"] >= 10


class TestProperties:
    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["put", "take", "ack", "reopen"]),
                              st.integers(1, 5), st.integers(1, 4)), max_size=40))
    def test_nothing_lost_nothing_twice(self, tmp_path_factory: pytest.TempPathFactory,
                                        ops: list[tuple[str, int, int]]) -> None:
        """Under any mix of puts, takes, acks and reopenings, each finding id's latest
        revision is delivered (taken and acked) or still queued, and seqs have no gaps."""
        path = tmp_path_factory.mktemp("p") / "o.db"
        box = Outbox(path)
        latest: dict[str, int] = {}
        delivered: dict[str, int] = {}
        seqs: list[int] = []
        for op, a, b in ops:
            if op == "put":
                rev = latest.get(f"f{a}", 0) + b
                latest[f"f{a}"] = rev
                box.put_finding(_finding(f"f{a}", rev))
            elif op == "take":
                for e in box.take(max_messages=a):
                    seqs.append(e.seq)
                    f = _decode(e.body).finding
                    delivered[f.id] = max(delivered.get(f.id, 0), f.revision)
            elif op == "ack" and seqs:
                box.ack(seqs[-min(a, len(seqs))])
            elif op == "reopen":
                box.close()
                box = Outbox(path)
        for e in box.take(max_messages=10_000):
            seqs.append(e.seq)
            f = _decode(e.body).finding
            delivered[f.id] = max(delivered.get(f.id, 0), f.revision)
        assert delivered == latest
        assert seqs == list(range(1, len(seqs) + 1))


def _scanned(box: Outbox) -> dict[str, tuple[int, int]]:
    """What the usage counters must say, by scanning the tables."""
    q = "SELECT count(*), coalesce(sum(length(body)), 0) FROM "
    db = box._db
    return {"pending": db.execute(q + "pending WHERE kind != 'loss'").fetchone(),
            "loss": db.execute(q + "pending WHERE kind = 'loss'").fetchone(),
            "inflight": db.execute(q + "inflight").fetchone()}


class TestUsageCounters:
    """Depth and bytes come from trigger-kept counters (no scan per put): they must equal a scan."""

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["finding", "status", "take", "ack", "reopen"]),
                              st.integers(1, 6), st.integers(1, 300)), max_size=50))
    def test_counters_equal_a_scan(self, tmp_path_factory: pytest.TempPathFactory,
                                   ops: list[tuple[str, int, int]]) -> None:
        path = tmp_path_factory.mktemp("u") / "o.db"
        bounds = {"max_messages": 8, "max_bytes": 2_000}  # small: overflow and loss reports too
        box = Outbox(path, **bounds)
        seqs: list[int] = []
        revs: dict[int, int] = {}
        for op, a, b in ops:
            if op == "finding":
                revs[a] = revs.get(a, 0) + 1
                f = _finding(f"f{a}", revs[a], Severity(a % 5))
                box.put_finding(dataclasses.replace(f, summary="x" * b))
            elif op == "status":
                box.put("status", b"s" * b)
            elif op == "take":
                seqs += [e.seq for e in box.take(max_messages=a)]
            elif op == "ack" and seqs:
                box.ack(seqs[-min(a, len(seqs))])
            elif op == "reopen":
                box.close()
                box = Outbox(path, **bounds)
            assert box._parts() == _scanned(box)
        n, size = box._usage(bounded_only=True)
        assert n <= bounds["max_messages"] and size <= bounds["max_bytes"]

    def test_an_outbox_made_before_the_counters_gets_them_on_open(self, tmp_path: Path) -> None:
        box = Outbox(tmp_path / "o.db")
        for i in range(5):
            box.put("status", b"m" * (i + 1))
        box.take(max_messages=2)
        db = box._db
        for stmt in ("DROP TABLE usage", "DROP TRIGGER pending_in", "DROP TRIGGER pending_out",
                     "DROP TRIGGER pending_body", "DROP TRIGGER inflight_in",
                     "DROP TRIGGER inflight_out"):
            db.execute(stmt)
        box.close()
        box = Outbox(tmp_path / "o.db")
        assert box._parts() == _scanned(box) == {"pending": (3, 12), "loss": (0, 0),
                                                 "inflight": (2, 3)}
        assert box.stats()["depth"] == 5 and box.stats()["in_flight"] == 2


WRITER = textwrap.dedent("""
    import sys
    from otsentry.agent.outbox import Outbox
    box = Outbox(sys.argv[1])
    i = 0
    while True:
        i += 1
        box.put("status", b"m%d" % i)
        print("put", i, flush=True)
        if i % 7 == 0:
            taken = box.take(max_messages=5)
            if taken:
                print("acking", *[e.body.decode()[1:] for e in taken], flush=True)
                box.ack(taken[-1].seq)
                print("acked", *[e.body.decode()[1:] for e in taken], flush=True)
""")


class TestKill9:
    @pytest.mark.parametrize("round_", range(8))
    def test_kill_9_while_writing(self, tmp_path: Path, round_: int) -> None:
        """A writer killed with SIGKILL at a random point leaves an outbox that reopens cleanly
        with every message it had put and not acked, and none it had acked."""
        path = tmp_path / "o.db"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                env=env, text=True)
        stop_after = random.Random(round_).randint(50, 400)
        put, acking, acked = set(), set(), set()

        def note(line: str) -> None:
            word, *nums = line.split()
            {"put": put, "acking": acking, "acked": acked}[word].update(int(n) for n in nums)

        for line in proc.stdout:  # type: ignore[union-attr]
            note(line)
            if len(put) >= stop_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait()
        # The writer ran ahead of this reader: what it printed before it died still counts.
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.endswith("\n"):
                note(line)
        proc.stdout.close()  # type: ignore[union-attr]
        box = Outbox(path)
        assert box._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        left = {int(e.body[1:]) for e in box.unacked(max_messages=10**6)}
        left |= {int(e.body[1:]) for e in box.take(max_messages=10**6)}
        # A kill between "acking" and "acked" may land before or after the ack's commit.
        unsure = acking - acked
        assert put - acked - unsure <= left, "a message put and not acked was lost"
        assert unsure <= left or not (unsure & left), "an ack was half applied"
        assert not (left & acked), "an acked message came back"
        assert left <= put | {max(put) + 1}, "a message appeared that was never put"
        assert stat.S_ISREG(path.stat().st_mode)
