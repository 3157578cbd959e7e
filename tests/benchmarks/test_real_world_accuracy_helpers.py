"""The scoring of benchmarks.real_world_accuracy: pairwise metrics, mixed profiles, the
email-only peer and the records no method can place."""

from __future__ import annotations

import pytest

from benchmarks.real_world_accuracy import email_only_peer, pairwise, unreachable


def test_pairwise_counts_pairs_and_mixed_profiles():
    truth = {"a": "p1", "b": "p1", "c": "p1", "d": "m1", "e": "p2"}
    kinds = {"p1": "person", "p2": "person", "m1": "shared_mailbox"}
    # one profile holds a, b and the mailbox's d; c and e alone
    assign = {"a": "x", "b": "x", "d": "x", "c": "y", "e": "z"}
    m = pairwise(assign, truth, kinds)
    # predicted pairs: ab, ad, bd (1 right); true pairs: ab, ac, bc
    assert (m["precision"], m["recall"]) == (pytest.approx(1 / 3, abs=1e-6),
                                             pytest.approx(1 / 3, abs=1e-6))
    assert m["mixed_profile_share"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["person_with_mailbox_or_room"] == 1
    perfect = pairwise({k: v for k, v in truth.items()}, truth, kinds)
    assert (perfect["precision"], perfect["recall"], perfect["f1"]) == (1.0, 1.0, 1.0)
    assert perfect["mixed_profile_share"] == 0.0 and perfect["person_with_mailbox_or_room"] == 0


def test_email_only_peer_joins_records_sharing_an_address_transitively():
    peer = email_only_peer({"r1": {"email:a@x"}, "r2": {"email:a@x", "email:b@x"},
                            "r3": {"email:b@x"}, "r4": {"email:c@x"}, "r5": set()})
    assert peer["r1"] == peer["r2"] == peer["r3"]
    assert len({peer["r1"], peer["r4"], peer["r5"]}) == 3


def test_unreachable_records_share_nothing_with_their_entity_and_name_nobody():
    truth = {"crm:1": "p1", "mail:a": "p1", "anon:9": "p1", "crm:2": "p2"}
    identifiers = {"crm:1": {"email:a"}, "mail:a": {"email:a"}, "anon:9": {"cookie:9"},
                   "crm:2": {"email:z"}}
    assert unreachable(truth, identifiers, named={"crm:2"}) == {"anon:9"}
