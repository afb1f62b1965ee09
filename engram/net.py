"""Where a host is: engram's servers bind loopback by default, and a token is never sent
over plain HTTP to another machine. One definition for every edge that asks."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1 (brackets allowed); False for any other name."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
