"""``otsentry-agent export``: the outbox as a signed, sequence-numbered segment file.

For plants behind a data diode or with no link at all: the file carries what
the stream would have carried (every message not yet acknowledged, with its
(epoch, seq)), signed with the agent's key, and ``otsentry-collector import``
checks it as it checks a stream and drops what it already has.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import structlog

from otsentry.agent.enroll import DEFAULT_STATE_DIR
from otsentry.agent.outbox import Entry, Outbox
from otsentry.agent.run_cmd import OUTBOX_FILE
from otsentry.agent.shipper import encode_batch
from otsentry.common.errors import OutboxError
from otsentry.common.logging import get_logger
from otsentry.common.pki import identity_of, load_certificate, load_private_key, public_keys_match
from otsentry.common.segment import certificate_pem, write_segment

__all__ = ["SUMMARY", "add_arguments", "run", "export"]

SUMMARY = "write the outbox to a signed file for a data diode or a hand-carried delivery"

HELP = """\
Writes every message waiting in the outbox (findings, inventory changes,
health) to FILE, signed with this agent's key and numbered like the stream, so
that the collector can check who wrote it and that nothing was changed:
  otsentry-collector import FILE
Importing a file twice, or a file that overlaps another one or the stream,
stores nothing twice.

The exported messages then leave the outbox (the file is now their copy);
with --keep they stay and are also delivered by the stream when it is up.
Works while the agent runs.

examples:
  otsentry-agent export --out /media/usb/plant-north-$(date +%F).otseg
  otsentry-agent export --state /var/lib/otsentry/agent --out diode/outgoing/seg.otseg
"""

#: Batches in a segment stay below this (as on the stream).
BATCH_BYTES = 1 << 20


def log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, looked up per call so that it follows ``configure()``."""
    return get_logger("agent.export")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``export``."""
    p.description = HELP
    p.add_argument("--out", metavar="FILE", type=Path, required=True, help="the file to write")
    p.add_argument("--state", metavar="DIR", type=Path, default=Path(DEFAULT_STATE_DIR),
                   help=f"the agent's state dir (default: {DEFAULT_STATE_DIR}, "
                        "or $OTSENTRY_STATE_DIR)")
    p.add_argument("--keep", action="store_true",
                   help="leave the exported messages in the outbox for the stream too")


def run(args: argparse.Namespace) -> int:
    """Export; prints what was written."""
    n, first, last = export(args.state, args.out, keep=args.keep)
    if not n:
        print("the outbox is empty: nothing to export")
        return 0
    print(f"wrote {n} messages (sequence numbers {first}..{last}) to {args.out}")
    return 0


def export(state: Path, out: Path, *, keep: bool = False) -> tuple[int, int, int]:
    """Write the unacknowledged outbox of the agent in ``state`` to ``out``.

    Returns:
        (messages, first seq, last seq); (0, 0, 0) when there was nothing and no file was written.
    Raises:
        OutboxError: no outbox in ``state``.
        PkiError: the agent's key or certificate is missing or do not match.
    """
    tls = state / "tls"
    cert, key = load_certificate(tls / "agent.crt"), load_private_key(tls / "agent.key")
    if not public_keys_match(cert, key):
        raise OutboxError(f"{tls / 'agent.crt'} is not the certificate of {tls / 'agent.key'}")
    agent = identity_of(cert).short
    if not (state / OUTBOX_FILE).exists():
        raise OutboxError(f"{state}: no outbox here; is this the agent's state dir?")
    box = Outbox(state / OUTBOX_FILE)
    try:
        entries = _everything(box)
        if not entries:
            return 0, 0, 0
        batches, chunk, size = [], [], 0
        for e in entries:
            if chunk and size + len(e.body) + 8 > BATCH_BYTES:
                batches.append(_batch(agent, box.epoch, chunk))
                chunk, size = [], 0
            chunk.append(e)
            size += len(e.body) + 8
        batches.append(_batch(agent, box.epoch, chunk))
        first, last = entries[0].seq, entries[-1].seq
        header = {"agent_id": agent, "epoch": box.epoch, "first_seq": first, "last_seq": last,
                  "messages": len(entries), "segment": box.next_export_segment(),
                  "created_ns": time.time_ns()}
        write_segment(out, header, batches, certificate_pem(cert), key)
        if not keep:
            box.ack(last)
        log().info("segment exported", path=str(out), agent=agent, epoch=box.epoch,
                   first_seq=first, last_seq=last, segment=header["segment"])
        return len(entries), first, last
    finally:
        box.close()


def _everything(box: Outbox) -> list[Entry]:
    """Every in-flight message, then every pending one (numbered now), in sequence order."""
    out: list[Entry] = []
    after = int(box.stats()["acked_seq"])  # type: ignore[call-overload]
    while chunk := box.unacked(after, 10_000, 1 << 30):
        out += chunk
        after = chunk[-1].seq
    while chunk := box.take(10_000, 1 << 30):
        out += chunk
    return out


def _batch(agent: str, epoch: int, entries: list[Entry]) -> bytes:
    return encode_batch(agent, epoch, entries[0].seq, [e.body for e in entries], time.time_ns())
