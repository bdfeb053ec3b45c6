"""The collector's ``[reporting]`` table and ``[[upstream]]`` recipients: who gets incidents.

    [reporting]
    organisation = "Example Water"      # who reports (a STIX identity)
    automatic = ["cross-site-source"]   # rules whose reporting clock starts at once

    [[upstream]]                         # one table per recipient: NICC, CSIRT, ISAC
    name = "nicc"
    api_root = "https://taxii.nicc.example/api1/"
    collection = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
    username = "utility-x"
    password_file = "nicc.password"
    min_severity = "medium"
    tlp = "amber"

    [upstream.sites.plant1]              # the sharing policy of one site, for this recipient
    tlp = "red"

Pure data and its checks; :mod:`otsentry.collector.upstream` does the work.
Errors name the file, the key (``upstream[1].tlp`` is the first recipient's)
and its line.  Passwords are read from a file (never written in this file) and
never shown by ``repr``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from otsentry.common.config import _Reader
from otsentry.common.errors import ConfigError
from otsentry.common.finding import Severity

__all__ = ["STAGES", "TLP_LEVELS", "Deadlines", "Recipient", "ReportingConfig", "SharingPolicy",
           "parse_reporting"]

#: NIS2-style reporting stages, in order.
STAGES = ("early-warning", "notification", "final-report")
#: TLP 2.0 levels, least to most restrictive (FIRST TLP 2.0).
TLP_LEVELS = ("clear", "green", "amber", "amber+strict", "red")
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class SharingPolicy:
    """What one site lets leave for one recipient.

    Attributes:
        share: False: nothing from this site leaves.
        min_severity: incidents below are not reported.
        tlp: TLP 2.0 level of what is sent (one of :data:`TLP_LEVELS`).
        redact: internal addresses become the asset's role and vendor; asset
            names and note authors are removed.
        kinds: finding kinds that may leave (empty: every kind).
        infrastructure: describe the targeted assets (STIX ``infrastructure``).
        label: the site's name upstream ("" keeps the site's own name).
    """

    share: bool = True
    min_severity: Severity = Severity.MEDIUM
    tlp: str = "amber"
    redact: bool = True
    kinds: tuple[str, ...] = ()
    infrastructure: bool = False
    label: str = ""

    def allows(self, kind: str) -> bool:
        """True when findings of ``kind`` may leave."""
        return self.share and (not self.kinds or kind in self.kinds)


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds from the start of the clock to each stage's deadline, and when it is sent."""

    early_warning_s: float = _DAY
    notification_s: float = 3 * _DAY
    final_report_s: float = 30 * _DAY
    #: notification and final report are sent this long before they are due (the early
    #: warning goes at once).
    send_before_s: float = 6 * 3600.0

    def due_s(self, stage: str) -> float:
        """Seconds from the start to ``stage``'s deadline."""
        return {"early-warning": self.early_warning_s, "notification": self.notification_s,
                "final-report": self.final_report_s}[stage]

    def send_s(self, stage: str) -> float:
        """Seconds from the start to when ``stage`` is queued."""
        return 0.0 if stage == "early-warning" else max(0.0, self.due_s(stage) - self.send_before_s)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One upstream TAXII 2.1 collection and what it may receive.

    Attributes:
        name: short name shown in status (letters, digits, ``. _ -``).
        api_root: URL of the TAXII 2.1 API root.
        collection: id of the collection objects are added to.
        username, password: HTTP basic auth ("" for none).
        client_cert, client_key: client certificate for mutual TLS (None for none).
        ca: CA bundle that signs the server's certificate (None: the system's).
        timeout_s: per HTTP request.
        policy: the sharing policy of sites without their own.
        sites: site -> its sharing policy.
        deadlines: the reporting stages' clocks.
    """

    name: str
    api_root: str
    collection: str
    username: str = ""
    password: str = field(default="", repr=False)
    client_cert: Path | None = None
    client_key: Path | None = None
    ca: Path | None = None
    timeout_s: float = 30.0
    policy: SharingPolicy = SharingPolicy()
    sites: Mapping[str, SharingPolicy] = field(default_factory=dict)
    deadlines: Deadlines = Deadlines()

    def policy_for(self, site: str) -> SharingPolicy:
        """The sharing policy of ``site``."""
        return self.sites.get(site, self.policy)


@dataclass(frozen=True, slots=True)
class ReportingConfig:
    """``[reporting]`` and every ``[[upstream]]`` recipient."""

    organisation: str = "otsentry operator"
    sector: str = "utilities"
    automatic: tuple[str, ...] = ()
    warn_before_s: float = 4 * 3600.0
    retry_initial_s: float = 30.0
    retry_max_s: float = 3600.0
    interval_s: float = 30.0
    recipients: tuple[Recipient, ...] = ()

    def recipient(self, name: str) -> Recipient | None:
        """The recipient called ``name``, or None."""
        return next((r for r in self.recipients if r.name == name), None)


class _UpstreamReader(_Reader):
    """The config reader, finding lines inside the N-th ``[[upstream]]`` table too."""

    def fail(self, key: str, expected: str) -> NoReturn:
        raise ConfigError(self.file, key, expected, _line(self.text, key))


def _line(text: str, key: str) -> int | None:
    m = re.match(r"upstream\[(\d+)\]\.(?:sites\.([^.]+)\.)?(\w+)$", key)
    if not m:
        return _plain_line(text, key)
    lines, n = text.splitlines(), 0
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "[[upstream]]"
                  and (n := n + 1) == int(m.group(1))), None)
    if start is None:
        return None
    if m.group(2):
        heads = [i for i in range(start, len(lines))
                 if re.fullmatch(rf'\[\s*upstream\.sites\."?{re.escape(m.group(2))}"?\s*\]',
                                 lines[i].strip())]
        start = heads[0] if heads else start
    for i in range(start + 1, len(lines)):
        s = lines[i].strip()
        if s.startswith("["):
            break
        if re.match(rf'"?{re.escape(m.group(3))}"?\s*=', s):
            return i + 1
    return start + 1


def _plain_line(text: str, key: str) -> int | None:
    from otsentry.common.config import _line_of

    return _line_of(text, key)


_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
_POLICY_KEYS = {"share", "min_severity", "tlp", "redact", "kinds", "infrastructure", "label"}
_RECIPIENT_KEYS = {"name", "api_root", "collection", "username", "password_file", "client_cert",
                   "client_key", "ca", "timeout", "early_warning", "notification", "final_report",
                   "send_before", "sites"} | _POLICY_KEYS - {"label"}


def parse_reporting(r: _Reader, data: dict[str, Any], base: Path) -> ReportingConfig:
    """``[reporting]`` and ``[[upstream]]`` of a parsed collector config.

    Raises:
        ConfigError: a bad or unknown key, an unreadable password file.
    """
    u = _UpstreamReader(r.file, r.text)
    t = u.table(data, "reporting", {"organisation", "sector", "automatic", "warn_before",
                                    "retry_initial", "retry_max", "interval"})
    raw = data.get("upstream", [])
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        u.fail("upstream", "[[upstream]] tables, one per recipient")
    recipients = tuple(_recipient(u, x, f"upstream[{i}]", base) for i, x in enumerate(raw, 1))
    names = [x.name for x in recipients]
    if len(set(names)) != len(names):
        u.fail(f"upstream[{len(names)}].name", "a name no other [[upstream]] table uses")
    cfg = ReportingConfig(
        organisation=u.string(t, "reporting.organisation", "otsentry operator", r".{1,200}",
                              "the reporting organisation's name"),
        sector=u.string(t, "reporting.sector", "utilities", r"[a-z-]{1,64}",
                        'a STIX industry sector such as "utilities" or "energy"'),
        automatic=_strings(u, t, "reporting.automatic", r"[a-z][a-z-]{0,63}",
                           'a list of incident rules, e.g. ["cross-site-source"]'),
        warn_before_s=u.duration(t, "reporting.warn_before", 4 * 3600.0, 0.0, 366 * _DAY),
        retry_initial_s=u.duration(t, "reporting.retry_initial", 30.0, 0.01),
        retry_max_s=u.duration(t, "reporting.retry_max", 3600.0, 0.01),
        interval_s=u.duration(t, "reporting.interval", 30.0, 0.01),
        recipients=recipients,
    )
    if cfg.retry_max_s < cfg.retry_initial_s:
        u.fail("reporting.retry_max", "a duration at least reporting.retry_initial")
    return cfg


def _recipient(u: _UpstreamReader, t: dict[str, Any], at: str, base: Path) -> Recipient:
    unknown = sorted(set(t) - _RECIPIENT_KEYS)
    if unknown:
        u.fail(f"{at}.{unknown[0]}", "one of " + ", ".join(sorted(_RECIPIENT_KEYS)))
    for key in ("name", "api_root", "collection"):
        if key not in t:
            u.fail(f"{at}.{key}", f"the recipient's {key.replace('_', ' ')} (required)")
    policy = _policy(u, t, at, SharingPolicy())
    sites = t.get("sites", {})
    if not isinstance(sites, dict) or not all(isinstance(v, dict) for v in sites.values()):
        u.fail(f"{at}.sites", "[upstream.sites.SITE] tables")
    cert, cert_key = _file(u, t, f"{at}.client_cert", base), _file(u, t, f"{at}.client_key", base)
    if (cert is None) != (cert_key is None):
        u.fail(f"{at}.client_key", "client_cert and client_key together, or neither")
    return Recipient(
        name=u.string(t, f"{at}.name", "", _NAME, "a name: letters, digits, . _ -"),
        api_root=u.string(t, f"{at}.api_root", "", r"https?://[^\s/]+(/\S*)?/",
                          'the API root URL, e.g. "https://taxii.example/api1/" (ending in /)'),
        collection=u.string(t, f"{at}.collection", "", r"[\w.:-]{1,128}", "a collection id"),
        username=u.string(t, f"{at}.username", "", r"[^\s:]{0,128}", "a user name"),
        password=_password(u, t, f"{at}.password_file", base),
        client_cert=cert, client_key=cert_key, ca=_file(u, t, f"{at}.ca", base),
        timeout_s=u.duration(t, f"{at}.timeout", 30.0, 0.1, 600.0),
        policy=policy,
        sites={s: _policy(u, v, f"{at}.sites.{s}", policy) for s, v in sites.items()},
        deadlines=_deadlines(u, t, at),
    )


def _policy(u: _UpstreamReader, t: dict[str, Any], at: str, dflt: SharingPolicy) -> SharingPolicy:
    if ".sites." in at:
        unknown = sorted(set(t) - _POLICY_KEYS)
        if unknown:
            u.fail(f"{at}.{unknown[0]}", "one of " + ", ".join(sorted(_POLICY_KEYS)))
    sev = u.string(t, f"{at}.min_severity", str(dflt.min_severity), r"info|low|medium|high|critical",
                   "info, low, medium, high or critical")
    return SharingPolicy(
        share=u.boolean(t, f"{at}.share", dflt.share),
        min_severity=Severity.parse(sev),
        tlp=u.string(t, f"{at}.tlp", dflt.tlp, "|".join(re.escape(x) for x in TLP_LEVELS),
                     "a TLP 2.0 level: " + ", ".join(TLP_LEVELS)),
        redact=u.boolean(t, f"{at}.redact", dflt.redact),
        kinds=_strings(u, t, f"{at}.kinds", r"[\w.:-]{1,128}", "a list of finding kinds",
                       dflt.kinds),
        infrastructure=u.boolean(t, f"{at}.infrastructure", dflt.infrastructure),
        label=u.string(t, f"{at}.label", "", r".{0,200}", "the site's name upstream"),
    )


def _deadlines(u: _UpstreamReader, t: dict[str, Any], at: str) -> Deadlines:
    year = 366 * _DAY
    d = Deadlines(
        early_warning_s=u.duration(t, f"{at}.early_warning", _DAY, 1.0, year),
        notification_s=u.duration(t, f"{at}.notification", 3 * _DAY, 1.0, year),
        final_report_s=u.duration(t, f"{at}.final_report", 30 * _DAY, 1.0, year),
        send_before_s=u.duration(t, f"{at}.send_before", 6 * 3600.0, 0.0, year),
    )
    if not d.early_warning_s <= d.notification_s <= d.final_report_s:
        u.fail(f"{at}.notification", "deadlines in order: early_warning <= notification <= "
                                     "final_report")
    return d


def _strings(u: _UpstreamReader, t: dict[str, Any], key: str, pattern: str, what: str,
             default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = t.get(key.rsplit(".", 1)[-1], list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) and re.fullmatch(pattern, v)
                                              for v in value):
        u.fail(key, what)
    return tuple(value)


def _file(u: _UpstreamReader, t: dict[str, Any], key: str, base: Path) -> Path | None:
    if key.rsplit(".", 1)[-1] not in t:
        return None
    p = u.path(t, key, Path(), base)
    if not p.is_file():
        u.fail(key, f"an existing file ({p} not found)")
    return p


def _password(u: _UpstreamReader, t: dict[str, Any], key: str, base: Path) -> str:
    p = _file(u, t, key, base)
    if p is None:
        return ""
    try:
        return p.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        u.fail(key, f"a readable file with the password ({exc})")
