"""TLP 2.0 markings: the published OASIS objects, and the round trip through stix2 (issue #569)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import stix2
from otsentry.collector.upstream import TLP_EXTENSION, TLP_IDS, parse_bundle, tlp_marking, tlp_of
from otsentry.collector.upstream._mapping import make_bundle
from otsentry.common.errors import OtSentryError

from tests.collector.upstream.conftest import validate
from tests.collector.upstream.test_mapping import RC, _finding, _incident, _objects

#: TLP:CLEAR as some producers write it: the TLP 1.0 form with a TLP 2.0 level (issue #569).
LEGACY_CLEAR = {"type": "marking-definition", "spec_version": "2.1",
                "id": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
                "created": "2022-10-01T00:00:00.000Z", "definition_type": "tlp",
                "name": "TLP:CLEAR", "definition": {"tlp": "clear"}}


@pytest.mark.parametrize("level", list(TLP_IDS))
def test_published_markings(level: str) -> None:
    """Each marking is the OASIS object: fixed id and created, the TLP 2.0 property extension."""
    m = tlp_marking(level)
    assert m["id"] == TLP_IDS[level] and m["created"] == "2022-10-01T00:00:00.000Z"
    assert m["name"] == f"TLP:{level.upper()}"
    assert m["extensions"] == {TLP_EXTENSION: {"extension_type": "property-extension",
                                               "tlp_2_0": level}}
    validate(make_bundle([m]))


@pytest.mark.parametrize("level", list(TLP_IDS))
def test_round_trip_through_stix2(level: str) -> None:
    """A report marked with each level serialises, parses back with stix2 and keeps its level."""
    from otsentry.common.upstream_config import Recipient, SharingPolicy

    rc = Recipient("n", "http://x.invalid/", "c", policy=SharingPolicy(tlp=level))
    objects = _objects(_incident(_finding("f1", "45.33.32.156", "10.0.0.9")), rc)
    text = json.dumps(make_bundle(objects))
    parsed = parse_bundle(text)
    back = json.loads(parsed.serialize())
    assert _instants(back) == _instants(json.loads(text))
    markings = {o["id"]: o for o in back["objects"] if o["type"] == "marking-definition"}
    (report,) = [o for o in parsed.objects if o.type == "report"]
    assert [tlp_of(markings[m]) for m in report.object_marking_refs] == [level]


def _instants(value: object) -> object:
    """``value`` with timestamps as instants (stix2 writes 16:00:00Z for 16:00:00.000Z)."""
    if isinstance(value, dict):
        return {k: _instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_instants(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", value):
        return dt.datetime.fromisoformat(value)
    return value


def test_legacy_tlp2_form_is_read() -> None:
    """The older definition_type form of a TLP 2.0 level parses and reads as that level."""
    ind = stix2.Indicator(pattern="[ipv4-addr:value = '45.33.32.156']", pattern_type="stix",
                          object_marking_refs=[LEGACY_CLEAR["id"]])
    bundle = {"type": "bundle", "id": "bundle--5f0c2c1e-1111-4222-8333-944455556666",
              "objects": [LEGACY_CLEAR, json.loads(ind.serialize())]}
    parsed = parse_bundle(bundle)
    (m,) = [o for o in parsed.objects if o.type == "marking-definition"]
    assert tlp_of(json.loads(m.serialize())) == "clear"
    assert tlp_of(LEGACY_CLEAR) == "clear"


def test_bad_input_is_a_clear_error() -> None:
    """Not JSON, not a bundle, or an invalid object: an OtSentryError that says which."""
    for bad, words in (("{", "not a STIX bundle"), ('{"type": "indicator"}', "type"),
                       ('{"type": "bundle", "id": "bundle--x", "objects": []}', "invalid")):
        with pytest.raises(OtSentryError, match=words):
            parse_bundle(bad)


def test_recipient_default_policy_is_redacting() -> None:
    """The default sharing policy redacts and marks TLP:AMBER."""
    assert RC.policy.redact and RC.policy.tlp == "amber"
