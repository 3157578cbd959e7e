"""The privacy seam (:mod:`idgraph.privacy.ledger`) run against every backend.

Consent entries and their current states (newer statements only, ties to the denial,
idempotent appends, any arrival order), histories, erasure, the purpose registry's
versions, the suppression list and its counters, forget requests and the audit trail.
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from idgraph.privacy.consent import ConsentEntry, fold
from idgraph.privacy.ledger import AuditEntry, ForgetRequest, Suppression
from idgraph.privacy.purposes import Purpose, PurposeError
from idgraph.privacy.sqlite_backend import SqlitePrivacyLedger
from tests.profile_store.cassandra_testing import cassandra_settings, truncate_keyspaces


@pytest.fixture(params=["sqlite", "cassandra"])
def ledger_factory(request, tmp_path):
    """``ledger_factory()`` opens a ledger of the test's backend on one database shared by
    every ledger the test opens (several processes), empty when the test starts: a file
    in the test's temp dir, or the global keyspace of ``privacy_prefix`` on the test
    cluster, truncated first."""
    opened = []
    if request.param == "cassandra":
        from idgraph.privacy.cassandra_backend import CassandraPrivacyLedger

        cluster = request.getfixturevalue("cassandra_cluster")
        prefix = request.getfixturevalue("privacy_prefix")
        truncate_keyspaces(cluster, prefix)

        def open_ledger():
            return CassandraPrivacyLedger(cassandra_settings(cluster, prefix))
    else:
        def open_ledger():
            return SqlitePrivacyLedger(tmp_path / "privacy.sqlite")

    def make():
        ledger = open_ledger()
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(ledger_factory):
    return ledger_factory()


def entry(entry_id, status, at, covers, purpose="email", **kw):
    return ConsentEntry(entry_id, covers[0], purpose, 1, status, at, at + 1, list(covers),
                        **kw)


def states(ledger, *subjects):
    return {(s.subject, s.purpose): (s.status, s.entry_id)
            for s in ledger.consent_states(subjects)}


def test_current_state_is_the_latest_statement_whatever_the_arrival_order(ledger_factory):
    entries = [entry("e1", "granted", 10, ["email:a@x.io"]),
               entry("e2", "withdrawn", 20, ["email:a@x.io"]),
               entry("e3", "granted", 15, ["email:a@x.io"])]
    answers = set()
    for n, order in enumerate(itertools.permutations(entries)):
        ledger = ledger_factory()
        ledger.erase_consent(["email:a@x.io"])
        for e in order:
            ledger.append_consent([e])
        answers.add(frozenset(states(ledger, "email:a@x.io").items()))
    assert answers == {frozenset({(("email:a@x.io", "email"), ("withdrawn", "e2"))})}


def test_a_denial_wins_a_tie_and_appends_are_idempotent(ledger):
    ledger.append_consent([entry("g", "granted", 10, ["crm:1"])])
    assert ledger.append_consent([entry("d", "denied", 10, ["crm:1"])]) == 1
    assert ledger.append_consent([entry("d", "denied", 10, ["crm:1"])]) == 0
    assert states(ledger, "crm:1") == {("crm:1", "email"): ("denied", "d")}
    assert [e.entry_id for e in ledger.consent_entries(["crm:1"])] == ["g", "d"]


def test_an_entry_covers_every_subject_it_names(ledger):
    ledger.append_consent([entry("w", "withdrawn", 5, ["email:a@x.io", "sendgrid:a@x.io",
                                                       "crm:1"], purpose="ads")])
    got = states(ledger, "sendgrid:a@x.io", "crm:1", "crm:2")
    assert got == {("sendgrid:a@x.io", "ads"): ("withdrawn", "w"),
                   ("crm:1", "ads"): ("withdrawn", "w")}
    assert [e.entry_id for e in ledger.consent_entries(["crm:1"])] == ["w"]
    assert ledger.consent_entries(["crm:2"]) == []


def test_history_keeps_every_field(ledger):
    e = entry("x", "granted", 7, ["email:a@x.io"], legal_basis="consent", source="api",
              collection_point="preference-centre", method="checkbox", notice_version="v3",
              jurisdiction="GDPR", actor="steward:1234", region="eu", profile_id="p-1")
    ledger.append_consent([e])
    assert ledger.consent_entries(["email:a@x.io"]) == [e]


def test_erase_removes_entries_and_states_of_the_subjects(ledger):
    ledger.append_consent([entry("a", "granted", 1, ["crm:1", "email:a@x.io"]),
                           entry("b", "denied", 2, ["crm:2"])])
    assert ledger.erase_consent(["crm:1"]) == 1
    assert states(ledger, "crm:1", "email:a@x.io", "crm:2") == {
        ("crm:2", "email"): ("denied", "b")}
    assert ledger.consent_entries(["email:a@x.io"]) == []


def test_fold_deny_wins_and_latest_wins(ledger):
    ledger.append_consent([entry("old-no", "withdrawn", 1, ["crm:1"]),
                           entry("new-yes", "granted", 9, ["crm:2"])])
    got = ledger.consent_states(["crm:1", "crm:2"])
    assert fold(got)["email"].status == "withdrawn"
    assert fold(got, "latest_wins")["email"].status == "granted"
    # a grant that covers both subjects ends the denial
    ledger.append_consent([entry("both", "granted", 10, ["crm:1", "crm:2"])])
    assert fold(ledger.consent_states(["crm:1", "crm:2"]))["email"].entry_id == "both"


def test_purposes_start_from_the_defaults_and_version_on_change(ledger):
    registry = ledger.purposes()
    assert {"email", "phone", "ads", "marketing", "analytics"} <= set(registry.purposes)
    with pytest.raises(PurposeError, match=r"unknown purpose \(known:"):
        registry.get("fax")
    email = registry.get("email")
    assert ledger.define_purposes([email], "me", 5.0) == []  # unchanged: no version
    changed = Purpose("email", description=email.description, legal_basis=email.legal_basis,
                      opt_in_regions=("eu",), event_types=email.event_types)
    added = ledger.define_purposes([changed, Purpose("surveys")], "me", 6.0)
    assert [(p.name, p.version) for p in added] == [("email", 2), ("surveys", 1)]
    again = ledger_after = ledger.purposes()
    assert again.get("email").opt_in_regions == ("eu",)
    assert again.version > registry.version
    assert [p.version for p in ledger.purpose_versions("email")] == [1, 2]
    assert ledger_after.get("surveys").author == "me"


def test_suppressions_counts_and_unsuppress(ledger):
    assert ledger.suppress([Suppression("h1", "forget", "fr1", 1.0),
                            Suppression("h2", "forget", "fr1", 1.0),
                            Suppression("h3", "forget", "fr2", 1.0)]) == 3
    assert ledger.suppress([Suppression("h1", "forget", "fr1", 1.0)]) == 0
    assert ledger.suppressed(["h1", "h3", "nope"]) == {"h1": "forget", "h3": "forget"}
    ledger.count_suppressed({"forget": 2})
    ledger.count_suppressed({"forget": 3, "other": 0})
    assert ledger.suppressed_counts() == {"forget": 5}
    assert ledger.unsuppress("fr1") == 2
    assert ledger.suppressed(["h1", "h2", "h3"]) == {"h3": "forget"}


def test_forget_requests_and_audit(ledger):
    r = ForgetRequest("fr1", "hash", "pending", "privacy:ab", 1.0, 1.0)
    ledger.put_forget_request(r)
    r.status, r.erased = "completed", {"store_records": 3}
    ledger.put_forget_request(r)
    assert ledger.forget_request("fr1") == r
    assert ledger.forget_request("nope") is None
    assert ledger.forget_requests_of("hash") == [r]
    assert ledger.open_forget_requests() == []
    pending = ForgetRequest("fr2", "other", "pending", "privacy:ab", 2.0, 2.0, ["p_1"])
    ledger.put_forget_request(pending)
    assert ledger.open_forget_requests() == [pending]
    ledger.audit(AuditEntry(1.0, "privacy:ab", "forget", "fr1", {"profiles": 1}))
    ledger.audit(AuditEntry(2.0, "privacy:ab", "unsuppress", "fr1"))
    assert [a.action for a in ledger.audit_entries()] == ["forget", "unsuppress"]
    assert [a.action for a in ledger.audit_entries(limit=1)] == ["unsuppress"]


def test_forget_requests_are_listed_newest_first_by_status_in_pages(ledger_factory):
    writer, reader = ledger_factory(), ledger_factory()
    made = [ForgetRequest("fr_b", "h1", "completed", "privacy:ab", 3.0, 4.0, ["p_1"]),
            ForgetRequest("fr_a", "h2", "pending", "privacy:ab", 3.0, 3.0, ["p_2"]),
            ForgetRequest("fr_c", "h3", "failed", "privacy:ab", 1.5, 2.0, ["p_3"],
                          error="BackendError"),
            ForgetRequest("fr_d", "h4", "pending", "privacy:ab", 5.0, 5.0, ["p_4"])]
    for r in made:
        writer.put_forget_request(r)
    newest = [made[3], made[0], made[1], made[2]]  # by time, then ID, both descending
    assert reader.list_forget_requests() == newest
    assert reader.list_forget_requests(limit=2) == newest[:2]
    assert reader.list_forget_requests(before=(3.0, "fr_b"), limit=2) == newest[2:]
    assert reader.list_forget_requests(before=(1.5, "fr_c")) == []
    assert reader.list_forget_requests("pending") == [made[3], made[1]]
    assert reader.list_forget_requests("pending", before=(5.0, "fr_d")) == [made[1]]
    assert reader.list_forget_requests("in_progress") == []
    made[1].status = "completed"  # put again: listed once, with its new status
    writer.put_forget_request(made[1])
    assert reader.list_forget_requests("completed") == [made[0], made[1]]
    assert reader.list_forget_requests("pending") == [made[3]]
    assert reader.list_forget_requests() == newest


def test_a_statement_made_by_one_process_is_read_by_another(ledger_factory):
    writer, reader = ledger_factory(), ledger_factory()
    writer.append_consent([entry("w", "withdrawn", 3, ["crm:9"])])
    assert states(reader, "crm:9") == {("crm:9", "email"): ("withdrawn", "w")}


def test_history_returns_the_newest_entries_oldest_first_ties_in_append_order(ledger):
    ledger.append_consent([entry("p1", "granted", 1, ["crm:1"]),
                           entry("q2", "granted", 2, ["crm:2"])])
    ledger.append_consent([entry("z3", "denied", 3, ["crm:1"])])
    ledger.append_consent([entry("b3", "granted", 3, ["crm:1"]),
                           entry("w4", "withdrawn", 4, ["crm:2"])])

    def ids(subjects, limit):
        return [e.entry_id for e in ledger.consent_entries(subjects, limit=limit)]

    assert ids(["crm:1", "crm:2"], 1000) == ["p1", "q2", "z3", "b3", "w4"]
    assert ids(["crm:1", "crm:2"], 3) == ["z3", "b3", "w4"]
    assert ids(["crm:1", "crm:2"], 2) == ["b3", "w4"]
    assert ids(["crm:1"], 1) == ["b3"]
    assert ids(["crm:1"], 0) == []


def test_concurrent_appends_in_opposite_orders_never_move_a_state_backwards(ledger_factory):
    subjects = ["email:a@x.io", "crm:1", "sendgrid:a@x.io"]
    # every entry covers all three subjects; captures collide so ties are decided too
    entries = [entry(f"e{i:02d}", "granted" if i % 3 else "denied", 100 + i // 2,
                     subjects[i % 3:] + subjects[:i % 3]) for i in range(24)]
    newest = max(entries, key=lambda e: (e.captured_at, e.status != "granted", e.entry_id))
    ledgers = [ledger_factory(), ledger_factory()]
    counted = [0, 0]
    errors = []
    start = threading.Barrier(2)

    def append(i, order):
        try:
            start.wait()
            for e in order:
                counted[i] += ledgers[i].append_consent([e])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(0, entries)),
               threading.Thread(target=append, args=(1, entries[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(counted) == len(entries)  # each entry was new to exactly one appender
    for reader in ledgers:
        assert states(reader, *subjects) == {(s, "email"): (newest.status, newest.entry_id)
                                             for s in subjects}
        assert len(reader.consent_entries(subjects)) == len(entries)


def log_after(ledger, cursor, limit, want=1, wait=15.0):
    """``consent_log_after``, again until it gives ``want`` entries or ``wait`` seconds
    passed: a backend may hold the newest entries back a few seconds (the Cassandra
    ledger reads no row younger than its settle window)."""
    deadline = time.monotonic() + wait
    while True:
        entries, after = ledger.consent_log_after(cursor, limit)
        if len(entries) >= want or time.monotonic() > deadline:
            return entries, after
        time.sleep(0.2)


def test_the_consent_log_is_read_in_append_order_with_a_cursor(ledger):
    assert ledger.consent_log_after("", 10) == ([], "")
    ledger.append_consent([entry("a", "granted", 9, ["s1"]), entry("b", "denied", 1, ["s2"])])
    first, cursor = log_after(ledger, "", 1)
    assert [e.entry_id for e in first] == ["a"]
    rest, end = log_after(ledger, cursor, 10)
    assert [e.entry_id for e in rest] == ["b"]
    assert ledger.consent_log_after(end, 10) == ([], end)
    ledger.append_consent([entry("c", "granted", 5, ["s3"])])
    assert [e.entry_id for e in log_after(ledger, end, 10)[0]] == ["c"]
    assert ledger.get_cursor("segments") == ""
    ledger.put_cursor("segments", end)
    assert ledger.get_cursor("segments") == end


def test_audit_entries_of_one_target(ledger):
    for n, target in enumerate(["p_1", "p_2", "p_1", ""]):
        ledger.audit(AuditEntry(float(n), "steward:ab", f"read{n}", target))
    assert [a.action for a in ledger.audit_of("p_1")] == ["read0", "read2"]
    assert [a.action for a in ledger.audit_of("p_1", limit=1)] == ["read2"]
    assert ledger.audit_of("p_9") == []
