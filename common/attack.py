"""MITRE ATT&CK for ICS: the technique ids findings carry, with their names.

The agent's detection catalogue tags findings with these ids; the collector
names them when it reports upstream (STIX ``attack-pattern`` objects).  One
table for both sides, checked against MITRE's STIX bundle by
``tests/agent/detect/test_catalogue.py``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["TECHNIQUES", "technique_url"]

#: MITRE ATT&CK for ICS v18.1 technique ids used by the catalogue, with their names.
#: A test checks every id and name against MITRE's STIX bundle (sha256 pinned).
TECHNIQUES: Final[dict[str, str]] = {
    "T0803": "Block Command Message",
    "T0804": "Block Reporting Message",
    "T0806": "Brute Force I/O",
    "T0814": "Denial of Service",
    "T0816": "Device Restart/Shutdown",
    "T0829": "Loss of View",
    "T0830": "Adversary-in-the-Middle",
    "T0831": "Manipulation of Control",
    "T0836": "Modify Parameter",
    "T0839": "Module Firmware",
    "T0843": "Program Download",
    "T0845": "Program Upload",
    "T0846": "Remote System Discovery",
    "T0848": "Rogue Master",
    "T0849": "Masquerading",
    "T0855": "Unauthorized Command Message",
    "T0856": "Spoof Reporting Message",
    "T0857": "System Firmware",
    "T0858": "Change Operating Mode",
    "T0861": "Point & Tag Identification",
    "T0869": "Standard Application Layer Protocol",
    "T0872": "Indicator Removal on Host",
    "T0885": "Commonly Used Port",
    "T0888": "Remote System Information Discovery",
}


def technique_url(technique: str) -> str:
    """The technique's page on attack.mitre.org (sub-techniques use a slash: T0001/001)."""
    return "https://attack.mitre.org/techniques/" + technique.replace(".", "/")
