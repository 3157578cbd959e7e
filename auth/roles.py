"""Roles and what they may do: the one permission table every transport enforces.

Each rpc needs one permission (:data:`RPC_PERMISSIONS`, keyed by the full gRPC method
name); each role grants a set of permissions (:data:`ROLE_PERMISSIONS`). A principal (a
key, a client certificate, a static token) holds one or more roles and may call a method
when one of them grants its permission. Anything not in the table is denied: an rpc added
without a row here is refused to everyone (a test compares the table with the services'
descriptors), as is an unknown service. Health checks need no credential at all.

``profiles.read.masked`` is the marketer's view of a profile: identifiers, record keys and
personal attributes masked (:mod:`idgraph.service.masking`). A marketer key granted
``unmask`` reads ``profiles.read`` instead. ``self.read`` (``WhoAmI``: what the caller's
own credential is and allows) is every role's.

The README's role table is generated from this module (``python -m idgraph.auth.roles``)
and a test keeps them equal.
"""

from __future__ import annotations

from collections.abc import Iterable

ACTIVATION = "activation"
MARKETER = "marketer"
STEWARD = "steward"
PRIVACY = "privacy"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (ACTIVATION, MARKETER, STEWARD, PRIVACY, OPERATOR, ADMIN)

ROLE_PURPOSE = {
    ACTIVATION: "activation channels: look profiles up, evaluate and watch segments, "
                "record and read consent",
    MARKETER: "segments: define, preview, count, list members; profiles with personal "
              "fields masked unless the key is granted unmask",
    STEWARD: "why records link: Explain, the review queue; profile lookups",
    PRIVACY: "consent, forget, suppression, subject export; lookups and Explain to find "
             "a subject",
    OPERATOR: "health, reflection, server status",
    ADMIN: "keys (create, list, rotate, revoke) and the audit log",
}

_P = "/idgraph.v1.ProfileService/"
_S = "/idgraph.v1.SegmentService/"
_V = "/idgraph.v1.PrivacyService/"
_A = "/idgraph.v1.AdminService/"
_REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
               "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")

HEALTH_PREFIX = "/grpc.health.v1.Health/"
"""Health checks (Check, Watch) need no credential: load balancers and probes call them."""

SELF_READ = "self.read"
"""Every role has it: a caller may read what its own credential is and allows (WhoAmI)."""

RPC_PERMISSIONS: dict[str, str] = {
    _P + "Lookup": "profiles.read",
    _P + "GetProfile": "profiles.read",
    _P + "BatchLookup": "profiles.read",
    _P + "Explain": "links.explain",
    _P + "ListReviews": "reviews.read",
    _P + "DecideReview": "reviews.decide",
    _P + "GetProfileHistory": "profiles.read",
    _S + "DefineSegment": "segments.write",
    _S + "DeleteSegment": "segments.write",
    _S + "GetSegment": "segments.read",
    _S + "ListSegments": "segments.read",
    _S + "EvaluateSegments": "segments.evaluate",
    _S + "CountSegment": "segments.count",
    _S + "ListSegmentMembers": "segments.members",
    _S + "WatchSegment": "segments.watch",
    _S + "CheckSegment": "segments.preview",
    _S + "PreviewSegment": "segments.preview",
    _S + "GetSegmentActivity": "segments.read",
    _V + "RecordConsent": "consent.write",
    _V + "GetConsent": "consent.read",
    _V + "ListPurposes": "purposes.read",
    _V + "Forget": "subjects.forget",
    _V + "GetForgetStatus": "subjects.forget",
    _V + "Unsuppress": "subjects.unsuppress",
    _V + "ExportSubject": "subjects.export",
    _V + "ListForgetRequests": "subjects.forget",
    _A + "CreateKey": "keys.manage",
    _A + "ListKeys": "keys.manage",
    _A + "RotateKey": "keys.manage",
    _A + "RevokeKey": "keys.manage",
    _A + "ReadAudit": "audit.read",
    _A + "VerifyAudit": "audit.read",
    _A + "GetServerStatus": "server.status",
    _A + "WhoAmI": SELF_READ,
    **{method: "reflection" for method in _REFLECTION},
}

MASKED_READ = "profiles.read.masked"
"""Satisfies ``profiles.read`` with the profile masked."""

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    ACTIVATION: frozenset({
        "profiles.read", "segments.read", "segments.evaluate", "segments.count",
        "segments.members", "segments.watch", "consent.write", "consent.read", "purposes.read",
        "reflection", SELF_READ}),
    MARKETER: frozenset({
        MASKED_READ, "segments.read", "segments.write", "segments.preview", "segments.evaluate",
        "segments.count", "segments.members", "segments.watch", "purposes.read", "reflection",
        SELF_READ}),
    STEWARD: frozenset({
        "profiles.read", "links.explain", "reviews.read", "reviews.decide", "segments.read",
        "reflection", SELF_READ}),
    PRIVACY: frozenset({
        "profiles.read", "links.explain", "consent.write", "consent.read", "purposes.read",
        "subjects.forget", "subjects.unsuppress", "subjects.export", "reflection", SELF_READ}),
    OPERATOR: frozenset({"server.status", "reflection", SELF_READ}),
    ADMIN: frozenset({"keys.manage", "audit.read", "server.status", "reflection", SELF_READ}),
}


def permissions_of(roles: Iterable[str], unmask: bool = False) -> frozenset[str]:
    """What ``roles`` grant together; ``unmask`` turns a masked read into a full one."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    if unmask and MASKED_READ in granted:
        granted.add("profiles.read")
    return frozenset(granted)


def decide(method: str, permissions: frozenset[str]) -> tuple[bool, bool]:
    """``(allowed, masked)`` for a principal with ``permissions`` calling ``method``:
    ``masked`` when it may read profiles only masked."""
    needed = RPC_PERMISSIONS.get(method)
    if needed is None:
        return False, False
    if needed in permissions:
        return True, False
    if needed == "profiles.read" and MASKED_READ in permissions:
        return True, True
    return False, False


def roles_allowed(method: str) -> list[str]:
    """The roles that may call ``method`` (for error messages and the README table)."""
    needed = RPC_PERMISSIONS.get(method)
    return [role for role in ROLES if needed is not None and (
        needed in ROLE_PERMISSIONS[role]
        or (needed == "profiles.read" and MASKED_READ in ROLE_PERMISSIONS[role]))]


def markdown_table() -> str:
    """The README's table: one row per rpc, one column per role (``masked`` where the
    profile is masked)."""
    lines = ["| rpc | " + " | ".join(ROLES) + " |",
             "| --- | " + " | ".join("---" for _ in ROLES) + " |"]
    for method, needed in RPC_PERMISSIONS.items():
        if method in _REFLECTION[1:]:
            continue
        cells = []
        for role in ROLES:
            granted = ROLE_PERMISSIONS[role]
            cells.append("yes" if needed in granted else
                         "masked" if needed == "profiles.read" and MASKED_READ in granted
                         else "")
        name = method.strip("/").replace("idgraph.v1.", "").replace("/", ".")
        if method in _REFLECTION:
            name = "ServerReflection (v1, v1alpha)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
