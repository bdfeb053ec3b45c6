"""MITRE ATT&CK for ICS: the tactics in matrix order and the techniques the heat map shows.

Names and tactics from https://attack.mitre.org/matrices/ics/ (v15).  A
technique in several tactics is listed under the one its Modbus findings are
about.  Techniques not listed here still count: they appear under "Other".
"""

from __future__ import annotations

__all__ = ["TACTICS", "TECHNIQUES", "OTHER"]

TACTICS = ("Initial Access", "Execution", "Persistence", "Evasion", "Discovery",
           "Lateral Movement", "Collection", "Command and Control",
           "Inhibit Response Function", "Impair Process Control", "Impact")
OTHER = "Other"

#: technique id -> (name, tactic)
TECHNIQUES: dict[str, tuple[str, str]] = {
    "T0848": ("Rogue Master", "Initial Access"),
    "T0883": ("Internet Accessible Device", "Initial Access"),
    "T0866": ("Exploitation of Remote Services", "Initial Access"),
    "T0858": ("Change Operating Mode", "Execution"),
    "T0821": ("Modify Controller Tasking", "Execution"),
    "T0889": ("Modify Program", "Persistence"),
    "T0857": ("System Firmware", "Persistence"),
    "T0856": ("Spoof Reporting Message", "Evasion"),
    "T0872": ("Indicator Removal on Host", "Evasion"),
    "T0846": ("Remote System Discovery", "Discovery"),
    "T0888": ("Remote System Information Discovery", "Discovery"),
    "T0840": ("Network Connection Enumeration", "Discovery"),
    "T0842": ("Network Sniffing", "Discovery"),
    "T0843": ("Program Download", "Lateral Movement"),
    "T0812": ("Default Credentials", "Lateral Movement"),
    "T0886": ("Remote Services", "Lateral Movement"),
    "T0801": ("Monitor Process State", "Collection"),
    "T0802": ("Automated Collection", "Collection"),
    "T0830": ("Adversary-in-the-Middle", "Collection"),
    "T0845": ("Program Upload", "Collection"),
    "T0861": ("Point & Tag Identification", "Collection"),
    "T0869": ("Standard Application Layer Protocol", "Command and Control"),
    "T0885": ("Commonly Used Port", "Command and Control"),
    "T0803": ("Block Command Message", "Inhibit Response Function"),
    "T0804": ("Block Reporting Message", "Inhibit Response Function"),
    "T0814": ("Denial of Service", "Inhibit Response Function"),
    "T0816": ("Device Restart/Shutdown", "Inhibit Response Function"),
    "T0835": ("Manipulate I/O Image", "Inhibit Response Function"),
    "T0806": ("Brute Force I/O", "Impair Process Control"),
    "T0836": ("Modify Parameter", "Impair Process Control"),
    "T0855": ("Unauthorized Command Message", "Impair Process Control"),
    "T0813": ("Denial of Control", "Impact"),
    "T0815": ("Denial of View", "Impact"),
    "T0826": ("Loss of Availability", "Impact"),
    "T0827": ("Loss of Control", "Impact"),
    "T0829": ("Loss of View", "Impact"),
    "T0831": ("Manipulation of Control", "Impact"),
    "T0832": ("Manipulation of View", "Impact"),
    "T0880": ("Loss of Safety", "Impact"),
}
