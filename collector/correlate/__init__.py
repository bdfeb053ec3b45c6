"""Correlation: findings from many agents and sites grouped into incidents.

Rules (:mod:`._rules`, TOML) say what groups; the pure matching parts
(:mod:`._match`) say which addresses may match across sites and how severity
rises; the job (:mod:`._job`) runs exactly once per finding over the
commit-ordered feed log, however many replicas run it.
"""

from otsentry.collector.correlate._job import Ran, correlate_once
from otsentry.collector.correlate._match import (PRIVATE, incident_severity, is_routable,
                                                 recon_then_write, technique_sequence)
from otsentry.collector.correlate._rules import (RECON, WRITE, CrossSite, Rules, SeverityRules,
                                                 SiteSource, load_rules, rules_from_dict)
from otsentry.collector.correlate._runner import run_jobs

__all__ = [
    "PRIVATE", "RECON", "WRITE", "CrossSite", "Ran", "Rules", "SeverityRules", "SiteSource",
    "correlate_once", "incident_severity", "is_routable", "load_rules", "recon_then_write",
    "rules_from_dict", "run_jobs", "technique_sequence",
]
