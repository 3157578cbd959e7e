"""Salesforce REST API sObject records (Contact, Lead) as found in a SOQL query response.

One record -> one :class:`IdentityRecord` keyed ``salesforce:<Id>``. Identifiers: the
record ID (``crm:salesforce``), ``Email``, the phone fields (national formats read in the
record's country) and, for a converted Lead, its ``ConvertedContactId`` (so a Lead and the
Contact it became share an identifier). IDs are in their 18-character form (the API's; a
15-character ID gets its suffix, :meth:`~idgraph.resolver.normalize.Normalizer.salesforce_id`),
the form other sources' references to the record are normalised to.

Event properties (type ``contact`` or ``lead``): ``lead_source`` (``LeadSource``) and, for a
Lead, ``lead_status`` (``Status``), as the org's picklist values.
"""

from __future__ import annotations

from idgraph.core.errors import InvalidIdentifierError, InvalidPayloadError
from idgraph.resolver.adapters._common import (
    RecordBuilder,
    opt_bool,
    opt_dict,
    opt_str,
    parse_time,
    req_dict,
    req_str,
)
from idgraph.resolver.model import IdentityRecord
from idgraph.resolver.normalize import Normalizer

SOURCE = "salesforce"

# sObject type -> (event type, phone fields, address field prefix)
_KINDS = {
    "Contact": ("contact", ("Phone", "MobilePhone", "HomePhone", "OtherPhone"), "Mailing"),
    "Lead": ("lead", ("Phone", "MobilePhone"), ""),
}


def adapt(payload: dict, norm: Normalizer) -> list[IdentityRecord]:
    meta = req_dict(SOURCE, payload, "attributes", "attributes")
    sobject = req_str(SOURCE, meta, "type", "attributes.type")
    kind = _KINDS.get(sobject)
    if kind is None:
        raise InvalidPayloadError(
            SOURCE, "attributes.type", "unsupported sObject type; expected Contact or Lead"
        )
    event_type, phone_fields, prefix = kind
    try:
        record_id = norm.salesforce_id(req_str(SOURCE, payload, "Id", "Id"))
    except InvalidIdentifierError as exc:
        raise InvalidPayloadError(SOURCE, "Id", str(exc)) from None

    # Version stamp: event time prefers LastModifiedDate, event ID prefers SystemModstamp.
    modified = opt_str(SOURCE, payload, "LastModifiedDate", "LastModifiedDate")
    modstamp = opt_str(SOURCE, payload, "SystemModstamp", "SystemModstamp")
    created = opt_str(SOURCE, payload, "CreatedDate", "CreatedDate")
    if modified is not None:
        event_time = parse_time(SOURCE, "LastModifiedDate", modified)
    elif modstamp is not None:
        event_time = parse_time(SOURCE, "SystemModstamp", modstamp)
    elif created is not None:
        event_time = parse_time(SOURCE, "CreatedDate", created)
    else:
        raise InvalidPayloadError(
            SOURCE, "LastModifiedDate", "missing (and no SystemModstamp or CreatedDate)"
        )
    stamp = modstamp or modified or created

    b = RecordBuilder(SOURCE, norm)
    b.add("crm:salesforce", record_id)
    if event_type == "lead" and opt_bool(SOURCE, payload, "IsConverted", "IsConverted"):
        b.typed(
            "crm:salesforce",
            opt_str(SOURCE, payload, "ConvertedContactId", "ConvertedContactId"),
            "ConvertedContactId",
        )

    code_field = f"{prefix}CountryCode"
    name_field = f"{prefix}Country"
    country = norm.country(opt_str(SOURCE, payload, code_field, code_field)) or norm.country(
        opt_str(SOURCE, payload, name_field, name_field)
    )

    email = b.email(opt_str(SOURCE, payload, "Email", "Email"), "Email")
    b.attr("email", email)
    for field in phone_fields:
        b.attr("phone", b.phone(opt_str(SOURCE, payload, field, field), field, country))

    b.name_attrs(
        opt_str(SOURCE, payload, "FirstName", "FirstName"),
        opt_str(SOURCE, payload, "MiddleName", "MiddleName"),
        opt_str(SOURCE, payload, "LastName", "LastName"),
    )
    for attr, field in (("street", "Street"), ("city", "City"), ("state", "State")):
        field = prefix + field
        b.text_attr(attr, opt_str(SOURCE, payload, field, field))
    field = f"{prefix}PostalCode"
    b.attr("postal_code", norm.postal_code(opt_str(SOURCE, payload, field, field)))
    b.attr("country", country)
    if event_type == "lead":
        b.text_attr("company", opt_str(SOURCE, payload, "Company", "Company"))
    else:
        account = opt_dict(SOURCE, payload, "Account", "Account")
        if account is not None:
            b.text_attr("company", opt_str(SOURCE, account, "Name", "Account.Name"))
    b.text_attr("job_title", opt_str(SOURCE, payload, "Title", "Title"))
    b.birth_date(opt_str(SOURCE, payload, "Birthdate", "Birthdate"))

    b.prop("lead_source", opt_str(SOURCE, payload, "LeadSource", "LeadSource"))
    if event_type == "lead":
        b.prop("lead_status", opt_str(SOURCE, payload, "Status", "Status"))

    opted_out = opt_bool(SOURCE, payload, "HasOptedOutOfEmail", "HasOptedOutOfEmail")
    if opted_out is not None:
        b.consent["email"] = not opted_out
    do_not_call = opt_bool(SOURCE, payload, "DoNotCall", "DoNotCall")
    if do_not_call is not None:
        b.consent["phone"] = not do_not_call

    return [b.build(record_id, f"{SOURCE}:{record_id}:{stamp}", event_time, event_type, "Id")]
