"""Deterministic profile IDs, shared by every graph backend.

A new profile's ID is derived from the key of its oldest record (the record that founded
it), so replaying the same link log gives the same IDs. If that ID was ever used before
(live or alias), a counter is mixed in until it is fresh.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable


def profile_id_for(founding_record: str, is_used: Callable[[str], bool]) -> str:
    """``p_`` + 20 base32 characters of SHA-256 over the founding record key (+ counter)."""
    n = 0
    while True:
        material = founding_record if n == 0 else f"{founding_record}#{n}"
        digest = hashlib.sha256(material.encode()).digest()
        pid = "p_" + base64.b32encode(digest[:15]).decode().lower()
        if not is_used(pid):
            return pid
        n += 1
