"""ATT&CK tags of rules as technique and tactic names with links, from a local table (no CDN,
no network: the pages work offline).

The table holds the tactics and the techniques our shipped rules tag plus those the SigmaHQ rules
tag most often (``../shared/data/sigmahq``), named as in MITRE ATT&CK Enterprise v15. A tag the
table does not know is still shown as its technique id with a link to attack.mitre.org; a test
asserts every technique our shipped rules tag has a name here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ATTACK_SITE = "https://attack.mitre.org"
_TECHNIQUE = re.compile(r"^attack\.(t\d{4})(?:\.(\d{3}))?$", re.IGNORECASE)

TACTICS = {
    "reconnaissance": ("TA0043", "Reconnaissance"),
    "resource-development": ("TA0042", "Resource Development"),
    "initial-access": ("TA0001", "Initial Access"),
    "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"),
    "privilege-escalation": ("TA0004", "Privilege Escalation"),
    "defense-evasion": ("TA0005", "Defense Evasion"),
    "credential-access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"),
    "lateral-movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"),
    "command-and-control": ("TA0011", "Command and Control"),
    "exfiltration": ("TA0010", "Exfiltration"),
    "impact": ("TA0040", "Impact"),
}

TECHNIQUES = {
    "T1003": "OS Credential Dumping",
    "T1003.001": "OS Credential Dumping: LSASS Memory",
    "T1003.002": "OS Credential Dumping: Security Account Manager",
    "T1003.003": "OS Credential Dumping: NTDS",
    "T1018": "Remote System Discovery",
    "T1021": "Remote Services",
    "T1021.001": "Remote Services: Remote Desktop Protocol",
    "T1021.002": "Remote Services: SMB/Windows Admin Shares",
    "T1021.004": "Remote Services: SSH",
    "T1027": "Obfuscated Files or Information",
    "T1027.010": "Obfuscated Files or Information: Command Obfuscation",
    "T1033": "System Owner/User Discovery",
    "T1036": "Masquerading",
    "T1036.003": "Masquerading: Rename System Utilities",
    "T1036.005": "Masquerading: Match Legitimate Name or Location",
    "T1046": "Network Service Discovery",
    "T1047": "Windows Management Instrumentation",
    "T1053": "Scheduled Task/Job",
    "T1053.005": "Scheduled Task/Job: Scheduled Task",
    "T1055": "Process Injection",
    "T1059": "Command and Scripting Interpreter",
    "T1059.001": "Command and Scripting Interpreter: PowerShell",
    "T1059.003": "Command and Scripting Interpreter: Windows Command Shell",
    "T1059.004": "Command and Scripting Interpreter: Unix Shell",
    "T1059.005": "Command and Scripting Interpreter: Visual Basic",
    "T1059.007": "Command and Scripting Interpreter: JavaScript",
    "T1068": "Exploitation for Privilege Escalation",
    "T1069": "Permission Groups Discovery",
    "T1069.001": "Permission Groups Discovery: Local Groups",
    "T1069.002": "Permission Groups Discovery: Domain Groups",
    "T1070": "Indicator Removal",
    "T1070.001": "Indicator Removal: Clear Windows Event Logs",
    "T1070.004": "Indicator Removal: File Deletion",
    "T1071": "Application Layer Protocol",
    "T1071.001": "Application Layer Protocol: Web Protocols",
    "T1071.004": "Application Layer Protocol: DNS",
    "T1078": "Valid Accounts",
    "T1078.004": "Valid Accounts: Cloud Accounts",
    "T1082": "System Information Discovery",
    "T1083": "File and Directory Discovery",
    "T1087": "Account Discovery",
    "T1087.002": "Account Discovery: Domain Account",
    "T1090": "Proxy",
    "T1098": "Account Manipulation",
    "T1098.007": "Account Manipulation: Additional Local or Domain Groups",
    "T1105": "Ingress Tool Transfer",
    "T1106": "Native API",
    "T1110": "Brute Force",
    "T1110.001": "Brute Force: Password Guessing",
    "T1110.002": "Brute Force: Password Cracking",
    "T1110.003": "Brute Force: Password Spraying",
    "T1110.004": "Brute Force: Credential Stuffing",
    "T1112": "Modify Registry",
    "T1127": "Trusted Developer Utilities Proxy Execution",
    "T1133": "External Remote Services",
    "T1136": "Create Account",
    "T1136.001": "Create Account: Local Account",
    "T1140": "Deobfuscate/Decode Files or Information",
    "T1190": "Exploit Public-Facing Application",
    "T1195.002": "Supply Chain Compromise: Compromise Software Supply Chain",
    "T1197": "BITS Jobs",
    "T1202": "Indirect Command Execution",
    "T1203": "Exploitation for Client Execution",
    "T1204.002": "User Execution: Malicious File",
    "T1210": "Exploitation of Remote Services",
    "T1218": "System Binary Proxy Execution",
    "T1218.010": "System Binary Proxy Execution: Regsvr32",
    "T1218.011": "System Binary Proxy Execution: Rundll32",
    "T1219": "Remote Access Software",
    "T1482": "Domain Trust Discovery",
    "T1485": "Data Destruction",
    "T1486": "Data Encrypted for Impact",
    "T1489": "Service Stop",
    "T1490": "Inhibit System Recovery",
    "T1505.003": "Server Software Component: Web Shell",
    "T1528": "Steal Application Access Token",
    "T1543": "Create or Modify System Process",
    "T1543.003": "Create or Modify System Process: Windows Service",
    "T1547.001": "Boot or Logon Autostart Execution: Registry Run Keys / Startup Folder",
    "T1548": "Abuse Elevation Control Mechanism",
    "T1548.002": "Abuse Elevation Control Mechanism: Bypass User Account Control",
    "T1548.003": "Abuse Elevation Control Mechanism: Sudo and Sudo Caching",
    "T1552.001": "Unsecured Credentials: Credentials In Files",
    "T1557": "Adversary-in-the-Middle",
    "T1557.002": "Adversary-in-the-Middle: ARP Cache Poisoning",
    "T1558.003": "Steal or Forge Kerberos Tickets: Kerberoasting",
    "T1560.001": "Archive Collected Data: Archive via Utility",
    "T1564.004": "Hide Artifacts: NTFS File Attributes",
    "T1566": "Phishing",
    "T1566.001": "Phishing: Spearphishing Attachment",
    "T1567.002": "Exfiltration Over Web Service: Exfiltration to Cloud Storage",
    "T1569.002": "System Services: Service Execution",
    "T1572": "Protocol Tunneling",
    "T1574.001": "Hijack Execution Flow: DLL Search Order Hijacking",
    "T1595": "Active Scanning",
    "T1595.002": "Active Scanning: Vulnerability Scanning",
    "T1595.003": "Active Scanning: Wordlist Scanning",
}


@dataclass(frozen=True)
class AttackRef:
    """One ATT&CK tag as shown: its id (``T1110.001``, ``TA0006``), name and link."""

    tag: str
    id: str
    name: str
    url: str


def attack_ref(tag: str) -> AttackRef | None:
    """The technique or tactic a rule tag names; ``None`` for other ``attack.*`` tags (groups,
    software) and anything else."""
    match = _TECHNIQUE.match(tag)
    if match:
        technique = match[1].upper() + (f".{match[2]}" if match[2] else "")
        path = match[1].upper() + (f"/{match[2]}" if match[2] else "")
        return AttackRef(tag, technique, TECHNIQUES.get(technique, ""), f"{ATTACK_SITE}/techniques/{path}/")
    tactic = TACTICS.get(tag.lower().removeprefix("attack."))
    if tactic:
        return AttackRef(tag, tactic[0], tactic[1], f"{ATTACK_SITE}/tactics/{tactic[0]}/")
    return None


__all__ = ["TACTICS", "TECHNIQUES", "AttackRef", "attack_ref"]
