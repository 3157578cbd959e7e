"""The permission table: every rpc the server registers has a row, deny by default, and
the README's table is the table."""

from __future__ import annotations

import re
from pathlib import Path

from idgraph.auth.roles import (
    RPC_PERMISSIONS,
    decide,
    markdown_table,
    permissions_of,
    roles_allowed,
)
from idgraph.proto.idgraph.v1 import admin_pb2, privacy_pb2, profiles_pb2, segments_pb2

SERVICES = [m.DESCRIPTOR.services_by_name[name]
            for m in (profiles_pb2, segments_pb2, privacy_pb2, admin_pb2)
            for name in m.DESCRIPTOR.services_by_name]


def test_every_rpc_of_every_service_has_a_permission():
    methods = {f"/{s.full_name}/{m.name}" for s in SERVICES for m in s.methods}
    assert methods - set(RPC_PERMISSIONS) == set()
    assert {m for m in RPC_PERMISSIONS if "/idgraph." in m} == methods


def test_deny_by_default():
    everything = permissions_of(["activation", "marketer", "steward", "privacy",
                                 "operator", "admin"])
    assert decide("/idgraph.v1.ProfileService/Unknown", everything) == (False, False)
    assert decide("/some.Other/Lookup", everything) == (False, False)
    assert roles_allowed("/idgraph.v1.ProfileService/Unknown") == []


def test_least_privilege_between_the_roles():
    def may(role, rpc, unmask=False):
        return decide(rpc, permissions_of([role], unmask))

    lookup = "/idgraph.v1.ProfileService/Lookup"
    assert may("activation", lookup) == (True, False)
    assert may("marketer", lookup) == (True, True)  # masked
    assert may("marketer", lookup, unmask=True) == (True, False)
    assert may("admin", lookup) == (False, False)
    assert may("operator", lookup) == (False, False)
    assert not may("steward", "/idgraph.v1.PrivacyService/Forget")[0]
    assert may("privacy", "/idgraph.v1.PrivacyService/Forget")[0]
    assert not may("privacy", "/idgraph.v1.AdminService/CreateKey")[0]
    assert may("admin", "/idgraph.v1.AdminService/CreateKey")[0]
    assert not may("activation", "/idgraph.v1.SegmentService/DefineSegment")[0]
    assert may("marketer", "/idgraph.v1.SegmentService/DefineSegment")[0]


def test_the_readme_table_is_the_permission_table():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    match = re.search(r"<!-- roles table -->\n(.*?)\n<!-- /roles table -->", readme, re.DOTALL)
    assert match, "README.md has no roles table between its markers"
    assert match.group(1).strip() == markdown_table().strip(), \
        "README's roles table differs: paste `python -m idgraph.auth.roles`"
