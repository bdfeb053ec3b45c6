"""tshark as an independent oracle for ``otsentry-agent decode --stats --json``.

:func:`tshark_stats` runs tshark once over a capture and counts Modbus/TCP ADUs
the way our ``--stats`` does: one count per ADU (several ADUs in one TCP segment
count separately), requests are ADUs sent *to* a Modbus server port, responses
ADUs sent *from* one, exception responses are counted under their function code
without the 0x80 bit (tshark reports ``modbus.func_code`` that way).

tshark's preferences are pinned on the command line, so a user's Wireshark
profile cannot change the result.  tshark cannot reassemble an MBAP header that
is split across two TCP segments; such ADUs are missing from its counts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

__all__ = ["TSHARK_PREFS", "TsharkError", "tshark_command", "tshark_stats"]

#: Preferences pinned on every run (names checked with ``tshark -G defaultprefs`` on 4.0).
TSHARK_PREFS: tuple[str, ...] = (
    "tcp.desegment_tcp_streams:TRUE",
    "tcp.analyze_sequence_numbers:TRUE",
    "tcp.reassemble_out_of_order:FALSE",
    "tcp.try_heuristic_first:FALSE",
    "tcp.check_checksum:FALSE",
    "mbtcp.desegment:TRUE",
    "mbtcp.tcp.port:502",
)

_FIELDS = ("ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport", "tcp.dstport",
           "mbtcp.unit_id", "modbus.func_code", "modbus.exception_code")


#: A clean environment: no user profile (HOME points nowhere), C locale.
_ENV = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}


class TsharkError(RuntimeError):
    """tshark is missing, or it failed on the capture (the message says which and why)."""


def tshark_command(pcap: Path, ports: tuple[int, ...] = (502,)) -> list[str]:
    """The exact tshark command line :func:`tshark_stats` runs for ``pcap``."""
    cmd = ["tshark", "-n", "-r", str(pcap)]
    for pref in TSHARK_PREFS:
        cmd += ["-o", pref]
    for port in ports:
        if port != 502:
            cmd += ["-d", f"tcp.port=={port},mbtcp"]
    cmd += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=/t"]
    for field in _FIELDS:
        cmd += ["-e", field]
    return cmd


def tshark_stats(pcap: Path, ports: tuple[int, ...] = (502,)) -> dict:
    """Count the Modbus/TCP ADUs of ``pcap`` with tshark.

    ``ports`` are the TCP ports Modbus servers listen on (502 is always decoded as
    Modbus/TCP; others are added with ``-d tcp.port==N,mbtcp``).  Returns a dict
    with exactly these keys:

    - ``requests_by_function``: ``{"3": 51, ...}``, decimal function code -> ADUs;
    - ``responses_by_function``: the same for responses, exceptions included;
    - ``exceptions_by_code``: ``{"1": 104, ...}``, exception code -> responses;
    - ``endpoints``: sorted list of distinct ``[src_ip, dst_ip, unit]`` of the ADUs;
    - ``packets``: number of frames in the file.

    Raises :class:`TsharkError` when tshark is not installed or exits non-zero.
    """
    if shutil.which("tshark") is None:
        raise TsharkError("tshark is not installed (Debian: apt-get install tshark)")
    proc = subprocess.run(tshark_command(pcap, ports), capture_output=True, text=True,
                          env=_ENV, check=False)
    if proc.returncode != 0:
        err = "\n".join(line for line in proc.stderr.splitlines() if "Running as user" not in line)
        raise TsharkError(f"tshark failed on {pcap} (exit {proc.returncode}): {err.strip()}")
    return _count(proc.stdout.splitlines(), set(ports) | {502})


def _count(lines: list[str], ports: set[int]) -> dict:
    """Fold tshark's field lines (one per frame) into the stats dict."""
    req: Counter[str] = Counter()
    rsp: Counter[str] = Counter()
    exc: Counter[str] = Counter()
    endpoints: set[tuple[str, str, int]] = set()
    for line in lines:
        cols = line.split("\t")
        if len(cols) < len(_FIELDS) or not cols[6]:
            continue
        src = _first(cols[0]) or _first(cols[1])
        dst = _first(cols[2]) or _first(cols[3])
        sport, dport = int(_first(cols[4]) or 0), int(_first(cols[5]) or 0)
        for unit in _split(cols[6]):
            endpoints.add((src, dst, int(unit)))
        side = rsp if sport in ports and dport not in ports else req
        if sport in ports and dport in ports:
            side = rsp if sport < dport else req
        side.update(_split(cols[7]))
        exc.update(_split(cols[8]))
    return {
        "requests_by_function": _by_int(req),
        "responses_by_function": _by_int(rsp),
        "exceptions_by_code": _by_int(exc),
        "endpoints": [list(t) for t in sorted(endpoints)],
        "packets": len(lines),
    }


def _first(value: str) -> str:
    return value.split(",", 1)[0]


def _split(value: str) -> list[str]:
    return [str(int(v, 0)) for v in value.split(",") if v]


def _by_int(counter: Counter[str]) -> dict[str, int]:
    return {k: counter[k] for k in sorted(counter, key=int)}
