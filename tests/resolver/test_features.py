"""Matching rows: what a record's attributes and identifiers give the model."""

from __future__ import annotations

import pytest

from idgraph.resolver.probabilistic.features import (
    company_key,
    domain_company,
    email_names,
    match_row,
)


def test_an_email_only_record_gets_names_and_company_from_its_address():
    row = match_row({}, ["email:mary.macleod@polarsoft-ventures.io"])
    assert (row["given_name"], row["family_name"]) == ("mary", "macleod")
    assert row["company"] == "polarsoft ventures"
    assert row["email_user"] == "mary.macleod"


def test_known_attributes_are_never_replaced_by_what_the_address_suggests():
    row = match_row({"given_name": "Mary-Ann", "family_name": "MacLeod", "company": "ACME, Inc."},
                    ["email:m.x@other-firm.com"])
    assert (row["given_name"], row["family_name"], row["company"]) == ("mary ann", "macleod",
                                                                        "acme")


@pytest.mark.parametrize(("user", "names"), [
    ("jon.smith", ("jon", "smith")), ("jon_smith84", ("jon", "smith")),
    ("jon-smith", ("jon", "smith")), ("jsmith", None), ("jon", None), ("j.smith", None),
    ("jon.a.smith", None),
])
def test_names_come_only_from_a_two_part_local_part(user, names):
    assert email_names(user) == names


@pytest.mark.parametrize(("domain", "company"), [
    ("polarsoft-ventures.io", "polarsoft ventures"), ("foxtech.co.jp", "foxtech"),
    ("mail.acme.co.uk", "acme"), ("beaconlogic-insurance.com.au", "beaconlogic insurance"),
    ("gmail.com", None), ("yahoo.co.jp", None), ("docomo.ne.jp", None), ("gmx.de", None),
])
def test_work_domains_name_a_company_and_free_mail_does_not(domain, company):
    assert domain_company(domain) == company


def test_company_keys_drop_legal_forms():
    assert company_key("Quantix Labs Ltd.") == company_key("QUANTIX LABS") == "quantix labs"
    assert company_key("Inc.") is None


def test_a_record_without_person_columns_has_no_row():
    assert match_row({"city": "Leeds"}, ["device:abc", "cookie:x"]) is None
