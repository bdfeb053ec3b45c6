"""Reporting incidents upstream (NICC, CSIRTs, ISACs) as STIX 2.1 over TAXII 2.1.

Layers, from pure to I/O:

* :mod:`._tlp` — the OASIS TLP 2.0 marking definitions, and reading bundles
  with stix2 despite its TLP 2.0 gap;
* :mod:`._redact` — internal addresses to role and vendor, names removed;
* :mod:`._mapping` — an incident's facts to STIX objects for one recipient
  (docs/stix.md);
* :mod:`._split` — envelopes within the API root's ``max_content_length``;
* :mod:`._queue` — declarations, notes, the stage clocks and the durable queue
  in the store;
* :mod:`._push` — the background job that pushes with taxii2-client.

For the dashboard and the CLI, :func:`incident_report_status` gives each
recipient's stages of one incident (due time, status, reason, overdue).
"""

from otsentry.collector.upstream._mapping import (
                                                  MODBUS_EXTENSION,
                                                  OTSENTRY_IDENTITY,
                                                  FindingFacts,
                                                  IncidentFacts,
                                                  NoteFacts,
                                                  incident_objects,
                                                  make_bundle,
                                                  shared_sites,
                                                  ts,
)
from otsentry.collector.upstream._push import (
                                                  DeliveryError,
                                                  Outcome,
                                                  Pushed,
                                                  TaxiiCollection,
                                                  push_once,
                                                  push_row,
                                                  run_upstream,
)
from otsentry.collector.upstream._queue import (
                                                  add_note,
                                                  declare,
                                                  incident_report_status,
                                                  load_facts,
                                                  report_status,
                                                  schedule,
                                                  warn_due,
)
from otsentry.collector.upstream._redact import (
                                                  INTERNAL,
                                                  AssetInfo,
                                                  Redactor,
                                                  is_global,
                                                  leaked_addresses,
)
from otsentry.collector.upstream._split import envelope_bytes, split_envelopes
from otsentry.collector.upstream._tlp import (
                                                  TLP_EXTENSION,
                                                  TLP_IDS,
                                                  parse_bundle,
                                                  strictest,
                                                  tlp_marking,
                                                  tlp_of,
)

__all__ = [
    "INTERNAL", "MODBUS_EXTENSION", "OTSENTRY_IDENTITY", "TLP_EXTENSION", "TLP_IDS", "AssetInfo",
    "DeliveryError", "FindingFacts", "IncidentFacts", "NoteFacts", "Outcome", "Pushed",
    "Redactor", "TaxiiCollection", "add_note", "declare", "envelope_bytes",
    "incident_objects", "incident_report_status", "is_global", "leaked_addresses",
    "load_facts", "make_bundle", "parse_bundle", "push_once", "push_row", "report_status",
    "run_upstream", "schedule", "shared_sites", "split_envelopes", "strictest", "tlp_marking",
    "tlp_of", "ts", "warn_due",
]
