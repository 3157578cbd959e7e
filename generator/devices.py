"""People's devices: app installs and web browsers, and the household devices they share.

Contract: :func:`draw_devices` gives a :class:`~idgraph.generator.model.Person` 0-3 devices
(each with its own Segment ``anonymousId``; iOS/Android installs with IDFV/Android ID and an
advertising ID only when tracking is allowed); :func:`share_household_devices` then lets a
second household member with an app account use some phones/tablets (``Device.shared_with``),
the device staying owned by the first. Both draw only from the ``random.Random`` they are
given, in a fixed order that is part of the output for a seed.
"""

from __future__ import annotations

import random

from idgraph.generator.ids import hex_id, uuid4_str
from idgraph.generator.model import Device, Person

__all__ = [
    "ANDROID_MODELS",
    "ANDROID_VERSIONS",
    "IOS_MODELS",
    "IOS_VERSIONS",
    "draw_devices",
    "draw_ip",
    "share_household_devices",
]

#: (manufacturer, model, is a tablet)
IOS_MODELS = (
    ("Apple", "iPhone15,2", False),
    ("Apple", "iPhone14,5", False),
    ("Apple", "iPhone16,1", False),
    ("Apple", "iPhone13,2", False),
    ("Apple", "iPad13,18", True),
    ("Apple", "iPad14,1", True),
)
ANDROID_MODELS = (
    ("samsung", "SM-S911B", False),
    ("samsung", "SM-A546B", False),
    ("Google", "Pixel 8", False),
    ("Google", "Pixel 7a", False),
    ("Xiaomi", "23049PCD8G", False),
    ("OnePlus", "CPH2449", False),
    ("samsung", "SM-X710", True),
)
IOS_VERSIONS = ("16.7.8", "17.4.1", "17.5.1", "17.6", "18.0.1")
ANDROID_VERSIONS = ("12", "13", "14")


def draw_ip(rng: random.Random) -> str:
    first = rng.choice(
        (24, 31, 46, 62, 73, 77, 81, 84, 87, 91, 98, 103, 109, 121, 151, 176, 185, 203)
    )
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def draw_devices(rng: random.Random, person: Person) -> None:
    """Append 0-3 devices to ``person.devices`` (web, iOS or Android)."""
    r = rng.random()
    n = 0 if r < 0.18 else (1 if r < 0.62 else (2 if r < 0.9 else 3))
    ios_share = 0.65 if person.country in ("JP", "US", "AU", "GB") else 0.4
    for _ in range(n):
        r = rng.random()
        if r < 0.38:
            kind = "web"
        elif r < 0.38 + 0.62 * ios_share:
            kind = "ios"
        else:
            kind = "android"
        ip = draw_ip(rng)
        if kind == "web":
            d = Device(kind="web", anonymous_id=uuid4_str(rng), owner=person.person_id, ip=ip)
        elif kind == "ios":
            manufacturer, model, tablet = rng.choice(IOS_MODELS)
            tracking = rng.random() < 0.35
            d = Device(
                kind="ios",
                anonymous_id=uuid4_str(rng, upper=True),
                owner=person.person_id,
                device_id=uuid4_str(rng, upper=True),
                advertising_id=uuid4_str(rng, upper=True) if tracking else None,
                ad_tracking=tracking,
                manufacturer=manufacturer,
                model=model,
                os_version=rng.choice(IOS_VERSIONS),
                tablet=tablet,
                ip=ip,
            )
        else:
            manufacturer, model, tablet = rng.choice(ANDROID_MODELS)
            tracking = rng.random() < 0.85
            d = Device(
                kind="android",
                anonymous_id=uuid4_str(rng),
                owner=person.person_id,
                device_id=hex_id(rng, 16),
                advertising_id=uuid4_str(rng) if tracking else None,
                ad_tracking=tracking,
                manufacturer=manufacturer,
                model=model,
                os_version=rng.choice(ANDROID_VERSIONS),
                tablet=tablet,
                ip=ip,
            )
        person.devices.append(d)


def share_household_devices(
    rng: random.Random, households: dict[str, list[Person]], n_devices: int, rate: float
) -> None:
    """Mark about ``rate`` of ``n_devices`` (all devices of the population) as used by
    another member of the owner's household; both must have an app account (``user_id``).
    A shared phone mostly becomes the family tablet."""
    eligible: list[tuple[Device, Person]] = []
    for hid in sorted(households):
        members = households[hid]
        for p in members:
            if p.user_id is None:
                continue
            others = [m for m in members if m is not p and m.user_id is not None]
            if not others:
                continue
            for d in p.devices:
                if d.kind != "web":
                    eligible.append((d, rng.choice(others)))
    want = min(len(eligible), round(n_devices * rate))
    if want <= 0:
        return
    for d, other in rng.sample(eligible, want):
        d.shared_with.append(other.person_id)
        if not d.tablet and rng.random() < 0.6:  # mostly the family tablet
            models = IOS_MODELS if d.kind == "ios" else ANDROID_MODELS
            d.manufacturer, d.model, d.tablet = rng.choice([m for m in models if m[2]])
