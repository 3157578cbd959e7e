"""Random identifiers drawn from a seeded ``random.Random`` (never ``uuid.uuid4``).

Contract: both functions consume exactly one ``getrandbits`` call, so a seed reproduces every
ID; the text forms are what the source systems use (lower-case hex, RFC 4122 version-4 UUIDs).
"""

from __future__ import annotations

import random

__all__ = ["hex_id", "uuid4_str"]


def hex_id(rng: random.Random, n: int) -> str:
    """``n`` random lower-case hex digits."""
    return f"{rng.getrandbits(4 * n):0{n}x}"


def uuid4_str(rng: random.Random, upper: bool = False) -> str:
    """An RFC 4122 version-4 UUID drawn from ``rng`` (deterministic, unlike uuid.uuid4)."""
    v = rng.getrandbits(128)
    v = (v & ~(0xF << 76)) | (0x4 << 76)  # version 4
    v = (v & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    h = f"{v:032x}"
    s = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return s.upper() if upper else s
