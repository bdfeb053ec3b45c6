"""The catalogue: ATT&CK ids and names against MITRE's data, and the generated document."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from otsentry.agent.detect import TECHNIQUES
from otsentry.agent.detect._entry import TECHNIQUE_ALIASES
from otsentry.agent.detect.catalogue import CATALOGUE, markdown

REPO = Path(__file__).resolve().parents[3]
MITRE = REPO.parent / "shared" / "data" / "mitre" / "ics-attack.json"
#: ATT&CK for ICS v18.1, as pinned in shared/data/mitre/README.md.
MITRE_SHA256 = "a7c0106492843485340710be9e841c1584d8fc6da8950e7097db0e7b5bc9f164"


@pytest.fixture(name="attack", scope="module")
def _attack() -> dict[str, dict]:
    data = MITRE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == MITRE_SHA256, "ATT&CK bundle is not v18.1"
    out = {}
    for o in json.loads(data)["objects"]:
        if o["type"] != "attack-pattern":
            continue
        for ref in o.get("external_references", []):
            if ref.get("source_name") in ("mitre-attack", "mitre-ics-attack"):
                out[ref["external_id"]] = o
    return out


def test_technique_ids_and_names_match_mitre(attack: dict[str, dict]) -> None:
    """Every technique id the catalogue uses exists in ATT&CK v18.1 under the same name."""
    for tid, name in TECHNIQUES.items():
        assert tid in attack, tid
        assert attack[tid]["name"] == name, tid


def test_techniques_are_current(attack: dict[str, dict]) -> None:
    """No detector maps to a revoked or deprecated technique; aliases point to current ids."""
    for tid in TECHNIQUES:
        assert not attack[tid].get("revoked") and not attack[tid].get("x_mitre_deprecated"), tid
    for old, new in TECHNIQUE_ALIASES.items():
        assert new in TECHNIQUES and old != new


def test_every_entry_is_complete() -> None:
    """Every detector has a family-qualified id, a name, a description and known techniques."""
    for kind, e in CATALOGUE.items():
        assert kind == e.id and "." in kind
        assert e.name and len(e.description) > 30
        assert set(e.techniques) <= set(TECHNIQUES)


def test_docs_detections_md_is_current() -> None:
    """docs/detections.md is exactly what the catalogue generates."""
    committed = (REPO / "docs" / "detections.md").read_text(encoding="utf-8")
    assert committed == markdown(), "run: python -m otsentry.agent.detect.catalogue --markdown > docs/detections.md"
