"""TLP 2.0 markings as the OASIS CTI TC publishes them, and reading them back with stix2.

The five TLP 2.0 marking definitions are fixed objects (ids, ``created`` and
the property extension ``extension-definition--60a3c5c5-…``) published in
oasis-open/cti-stix-common-objects, ``extension-definition-specifications/tlp-2.0``.
Recipients recognise them by id, so they are copied here exactly, never made.

The stix2 library (3.0) knows only the TLP 1.0 markings of the STIX 2.1
specification: a TLP 2.0 level written in the older ``definition_type: "tlp"``
form (``{"tlp": "clear"}``, as some producers do) raises
``TLPMarkingDefinitionError`` (cti-python-stix2 issue #569).
:func:`parse_bundle` rewrites such markings into the published extension form
before stix2 sees them, so bundles from other members read back too.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from otsentry.common.errors import OtSentryError

__all__ = ["TLP_EXTENSION", "TLP_IDS", "parse_bundle", "strictest", "tlp_marking", "tlp_of"]

TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
_CREATED = "2022-10-01T00:00:00.000Z"

#: TLP 2.0 level -> the id of its OASIS marking definition.
TLP_IDS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
_LEVEL_OF_ID = {v: k for k, v in TLP_IDS.items()}
_ORDER = tuple(TLP_IDS)  # least to most restrictive


def tlp_marking(level: str) -> dict[str, Any]:
    """The published marking-definition object of TLP 2.0 ``level`` (e.g. ``"amber+strict"``)."""
    return {"type": "marking-definition", "spec_version": "2.1", "id": TLP_IDS[level],
            "created": _CREATED, "name": f"TLP:{level.upper()}",
            "extensions": {TLP_EXTENSION: {"extension_type": "property-extension",
                                           "tlp_2_0": level}}}


def strictest(levels: list[str] | tuple[str, ...] | set[str]) -> str:
    """The most restrictive of TLP 2.0 ``levels`` ("clear" for none)."""
    return max(levels, key=_ORDER.index, default="clear")


def tlp_of(marking: dict[str, Any]) -> str | None:
    """The TLP 2.0 level a marking-definition stands for, in either form; None if it is no TLP 2.0."""
    ext = (marking.get("extensions") or {}).get(TLP_EXTENSION)
    if isinstance(ext, dict) and ext.get("tlp_2_0") in TLP_IDS:
        return ext["tlp_2_0"]
    if marking.get("id") in _LEVEL_OF_ID:
        return _LEVEL_OF_ID[marking["id"]]
    if marking.get("definition_type") == "tlp" and marking.get("id") not in _TLP1_IDS:
        # The older form with a TLP 2.0 level or an id that is not TLP 1.0's: stix2 refuses it.
        level = str((marking.get("definition") or {}).get("tlp", "")).lower()
        return {"white": "clear"}.get(level, level) if level in (*TLP_IDS, "white") else None
    return None


# The TLP 1.0 markings of the STIX 2.1 specification, which stix2 checks and accepts.
_TLP1_IDS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",  # white
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",  # green
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",  # amber
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",  # red
}


def _normalise(obj: dict[str, Any]) -> dict[str, Any]:
    """A TLP 2.0 marking in the published form; every other object unchanged."""
    if obj.get("type") != "marking-definition" or obj.get("id") in _TLP1_IDS:
        return obj
    level = tlp_of(obj)
    if level is None:
        return obj
    published = tlp_marking(level)
    if obj.get("id") != published["id"]:
        # Another producer's id for a TLP 2.0 level: keep its id (objects refer to it).
        published = {**published, "id": obj["id"], "created": obj.get("created", _CREATED)}
    return published


def parse_bundle(data: str | bytes | dict[str, Any]) -> Any:
    """Parse a STIX 2.1 bundle with stix2, TLP 2.0 markings included (see the module docstring).

    Args:
        data: the bundle as JSON text or a dict.
    Returns:
        a ``stix2.v21.Bundle``; custom properties and extensions are allowed.
    Raises:
        OtSentryError: not JSON, not a bundle, or stix2 refuses an object (the message says which).
    """
    import stix2
    from stix2.exceptions import STIXError

    try:
        bundle = json.loads(data) if isinstance(data, (str, bytes)) else copy.deepcopy(data)
    except ValueError as exc:
        raise OtSentryError(f"not a STIX bundle: {exc}") from None
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise OtSentryError("not a STIX bundle: expected an object with \"type\": \"bundle\"")
    bundle["objects"] = [_normalise(o) if isinstance(o, dict) else o
                         for o in bundle.get("objects", [])]
    try:
        return stix2.parse(bundle, allow_custom=True)
    except (STIXError, ValueError, TypeError) as exc:
        raise OtSentryError(f"invalid STIX 2.1 bundle: {exc}") from None
