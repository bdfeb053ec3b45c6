"""The store's wire-level finding check and merge agree with the finding model (the oracle)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from otsentry.collector.store._merge import check, merge
from otsentry.common.errors import MessageError
from otsentry.common.finding import merge_forward
from otsentry.v1 import convert, finding_pb2
from tests.common.strategies import copies_of_one_finding, u64


@given(copies_of_one_finding(), st.randoms())
def test_merge_equals_merge_forward(copies: list, rnd) -> None:  # type: ignore[no-untyped-def]
    """Merging copies as messages in any order gives the model's merge, field for field."""
    rnd.shuffle(copies)
    want = copies[0]
    got = convert.finding_to_proto(copies[0])
    for c in copies[1:]:
        want = merge_forward(want, c)
        out = merge(got, convert.finding_to_proto(c))
        got = got if out is None else out
    assert convert.finding_from_proto(got) == want


@given(st.builds(finding_pb2.Finding, id=st.text(max_size=130), revision=u64, count=u64,
                 severity=st.integers(0, 7), first_seen_ns=st.integers(-5, 5),
                 last_seen_ns=st.integers(-5, 5)),
       st.integers(0, 300 * 1024))
def test_check_refuses_what_the_model_refuses(msg: finding_pb2.Finding, pcap: int) -> None:
    """check() raises MessageError exactly when converting to the model does."""
    msg.evidence.pcap = b"\0" * pcap
    try:
        convert.finding_from_proto(msg)
        model_ok = True
    except MessageError:
        model_ok = False
    try:
        check(msg)
        ok = True
    except MessageError:
        ok = False
    assert ok == model_ok
