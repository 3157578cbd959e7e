"""AdminService: API keys and the audit log over gRPC (admins), the server's status
(operators), who the caller is (everyone). Thin: :class:`~idgraph.auth.key_admin.KeyAdmin` and
:mod:`idgraph.auth.audit` do the work."""

from __future__ import annotations

import os
from datetime import datetime

import grpc

from idgraph.auth import audit_check
from idgraph.auth.key_admin import IssuedKey, KeyAdmin, KeyListing
from idgraph.auth.keys import ApiKey
from idgraph.auth.roles import MASKED_READ
from idgraph.proto.idgraph.v1 import admin_pb2 as apb
from idgraph.proto.idgraph.v1 import admin_pb2_grpc as apb_grpc
from idgraph.service.access import Access
from idgraph.service.convert import timestamp
from idgraph.service.interceptors import current_principal
from idgraph.service.servicer import InvalidRequestError, NotAvailableError, _check_text

MAX_AUDIT_PAGE = 1000


def key_proto(key: ApiKey, state: str, last_used: float | None = None) -> apb.ApiKey:
    return apb.ApiKey(
        key_id=key.key_id, owner=key.owner, roles=key.roles, regions=key.regions,
        created_at=timestamp(key.created_at), expires_at=timestamp(key.expires_at),
        last_used_at=timestamp(last_used) if last_used else None,
        revoked_at=timestamp(key.revoked_at) if key.revoked_at else None, state=state,
        unmask=key.unmask, rate_per_second=key.rate_per_second or 0.0,
        created_by=key.created_by, description=key.description,
        rotated_from=key.rotated_from, rotated_to=key.rotated_to)


def _issued(issued: IssuedKey) -> apb.IssuedKey:
    return apb.IssuedKey(key_text=issued.text, key=key_proto(issued.key, "active"))


def _listed(listing: KeyListing) -> apb.ApiKey:
    return key_proto(listing.key, listing.state, listing.last_used)


class AdminServiceServicer(apb_grpc.AdminServiceServicer):
    """Keys through ``access.keys``, the audit log in ``access.audit_dir``; what the
    server serves for GetServerStatus."""

    def __init__(self, access: Access, served_regions: list[str], *, tls: bool,
                 client_certificates: bool, static_tokens: int, version: str) -> None:
        self._access = access
        self._status = apb.ServerStatus(
            served_regions=served_regions, tls=tls, client_certificates=client_certificates,
            api_keys=access.keys is not None, static_tokens=static_tokens, version=version)

    def _keys(self) -> KeyAdmin:
        if self._access.keys is None:
            raise NotAvailableError("this server has no key store (started with static "
                                    "tokens only)")
        return self._access.keys

    def _audit_dir(self):
        if self._access.audit_dir is None or self._access.audit_public_key is None:
            raise NotAvailableError("this server keeps no audit log")
        return self._access.audit_dir

    def CreateKey(self, request: apb.CreateKeyRequest, context: grpc.ServicerContext
                  ) -> apb.IssuedKey:
        who = current_principal()
        issued = self._keys().create(
            request.owner, request.roles, regions=request.regions,
            expires_in_days=request.expires_in_days or None, unmask=request.unmask,
            rate_per_second=request.rate_per_second or None,
            description=request.description[:200], by=who.name, by_role=who.role)
        return _issued(issued)

    def ListKeys(self, request: apb.ListKeysRequest, context: grpc.ServicerContext
                 ) -> apb.ListKeysResponse:
        listed = self._keys().list(include_inactive=request.include_inactive)
        return apb.ListKeysResponse(keys=[_listed(k) for k in listed])

    def RotateKey(self, request: apb.RotateKeyRequest, context: grpc.ServicerContext
                  ) -> apb.RotateKeyResponse:
        _check_text("key_id", request.key_id)
        who = current_principal()
        successor, previous = self._keys().rotate(
            request.key_id.strip(), overlap_seconds=request.overlap_seconds,
            expires_in_days=request.expires_in_days or None, by=who.name, by_role=who.role)
        state = "active" if previous.expires_at > datetime.now().timestamp() else "expired"
        return apb.RotateKeyResponse(successor=_issued(successor),
                                     previous=key_proto(previous, state))

    def RevokeKey(self, request: apb.RevokeKeyRequest, context: grpc.ServicerContext
                  ) -> apb.ApiKey:
        _check_text("key_id", request.key_id)
        who = current_principal()
        revoked = self._keys().revoke(request.key_id.strip(), by=who.name, by_role=who.role,
                                      reason=request.reason[:200])
        return key_proto(revoked, "revoked")

    def ReadAudit(self, request: apb.ReadAuditRequest, context: grpc.ServicerContext
                  ) -> apb.ReadAuditResponse:
        if request.after_seq < 0 or not 0 <= request.limit <= MAX_AUDIT_PAGE:
            raise InvalidRequestError(f"after_seq must be >= 0 and limit 0..{MAX_AUDIT_PAGE}")
        entries = audit_check.read_entries(self._audit_dir(), after_seq=request.after_seq,
                                     limit=request.limit or 100,
                                     action=request.action or None,
                                     actor=request.actor or None)
        return apb.ReadAuditResponse(entries=[
            apb.AuditEntry(seq=e.seq, time=timestamp(datetime.fromisoformat(e.time).timestamp()),
                           actor=e.actor, role=e.role, action=e.action, resource=e.resource,
                           region=e.region, request_id=e.request_id, outcome=e.outcome,
                           reason=e.reason, count=e.count, resources=e.resources,
                           hash=e.hash)
            for e in entries])

    def VerifyAudit(self, request: apb.VerifyAuditRequest, context: grpc.ServicerContext
                    ) -> apb.VerifyAuditResponse:
        if self._access.audit is not None:
            self._access.audit.flush()
        report = audit_check.verify(self._audit_dir(), self._access.audit_public_key)
        return apb.VerifyAuditResponse(
            ok=report.ok, entries=report.entries, checkpoints=report.checkpoints,
            unsigned_tail=report.unsigned_tail, problems=[p.message for p in report.problems])

    def WhoAmI(self, request: apb.WhoAmIRequest, context: grpc.ServicerContext
               ) -> apb.WhoAmIResponse:
        """The caller's principal and what its roles grant (sorted); for an API key also
        its owner and expiry, read from the key store. ``unmask``: the caller has the
        marketer's masked read and reads profiles whole all the same (a key granted
        unmask, a static token, or another of its roles reads profiles)."""
        who = current_principal()
        answer = apb.WhoAmIResponse(
            principal=who.name, key_id=who.key_id, roles=who.roles, regions=who.regions,
            unmask=MASKED_READ in who.permissions and "profiles.read" in who.permissions,
            permissions=sorted(who.permissions), served_regions=self._status.served_regions)
        if who.key_id and self._access.keys is not None:
            key = self._access.keys.get(who.key_id)
            answer.owner = key.owner
            answer.expires_at.CopyFrom(timestamp(key.expires_at))
        return answer

    def GetServerStatus(self, request: apb.GetServerStatusRequest,
                        context: grpc.ServicerContext) -> apb.ServerStatus:
        status = apb.ServerStatus()
        status.CopyFrom(self._status)
        status.pid = os.getpid()  # read per call: the process that answers, even if forked
        return status
