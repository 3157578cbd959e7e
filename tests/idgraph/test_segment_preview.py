"""Segments over stored profiles: what a segment sees of a profile, the exact preview and
the CLI's check and preview commands (the real engine and store, no fake)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from helpers import record

from idgraph.cli import main
from idgraph.engine import Engine
from idgraph.engine.segment_preview import preview, profile_facts
from idgraph.segments import parse
from idgraph.settings import Settings

PEOPLE = [
    # an EU contact who may be emailed, with a CRM ID and a phone
    record("salesforce", "003A", "e1", 100, ["crm:salesforce:003A", "email:anna@acme.de",
                                            "phone:+4930123456"],
           consent={"email": True}, given_name="Anna", family_name="Meyer", country="DE"),
    # an EU app user who withdrew email consent
    record("segment", "u1", "e2", 200, ["user:segment:u1", "email:jo@x.fr"],
           consent={"email": False}, given_name="Jo", country="FR"),
    # a US contact, consent never asked
    record("hubspot", "51", "e3", 300, ["crm:hubspot:51", "email:sam@x.com"],
           given_name="Sam", country="US"),
]
FILE = """
[segments."EU with CRM"]
definition = '''region in ("eu") and has_identifier(crm)'''

[segments."EU mailable"]
definition = '''
(region in ("eu") or in_segment("EU with CRM"))
and consent("email") = granted
'''

[segments."Not asked"]
definition = '''consent("email") = unknown and not in_segment("EU with CRM")'''
"""


@pytest.fixture()
def stored(tmp_path) -> Settings:
    settings = Settings(data_dir=tmp_path / "d")
    with Engine(settings) as engine:
        engine.ingest(PEOPLE)
    return settings


def test_profile_facts_are_what_the_profile_shows(stored):
    with Engine(stored) as engine:
        anna = engine.queries.lookup("email:anna@acme.de").profile
    facts = profile_facts(anna, lambda _name: False)
    assert facts.region == "eu" and facts.consent == {"email": True}
    assert ("crm:salesforce", "003A") in facts.identifiers
    assert ("phone", "+4930123456") in facts.identifiers
    assert facts.identifier_sources == {"salesforce"}
    assert facts.attributes["given_name"] == "Anna"


def test_preview_counts_match_a_computation_over_the_profiles(stored, tmp_path):
    path = tmp_path / "segments.toml"
    path.write_text(FILE)
    with Engine(stored) as engine:
        profiles = [engine.queries.profile(p) for p in engine.graph.profile_ids()]
    definitions = {
        "EU with CRM": parse('region in ("eu") and has_identifier(crm)'),
        "EU mailable": parse('(region in ("eu") or in_segment("EU with CRM")) '
                             'and consent("email") = granted'),
        "Not asked": parse('consent("email") = unknown and not in_segment("EU with CRM")'),
    }
    views, evaluated = preview(definitions, profiles, datetime.now(UTC))
    # the same questions asked of the profiles directly
    eu_crm = {p.profile_id for p in profiles if p.region == "eu"
              and any(i.type.startswith("crm:") for i in p.identifiers)}
    mailable = {p.profile_id for p in profiles if p.consent.get("email") is True
                and (p.region == "eu" or p.profile_id in eu_crm)}
    not_asked = {p.profile_id for p in profiles if "email" not in p.consent} - eu_crm
    assert evaluated == 3
    assert {m.profile_id for m in views["EU with CRM"].samples} == eu_crm and len(eu_crm) == 1
    assert views["EU mailable"].count == len(mailable) == 1
    assert views["Not asked"].count == len(not_asked) == 1
    assert views["EU with CRM"].overlap == {"EU mailable": 1}
    assert views["EU with CRM"].samples[0].clauses == ['region in ("eu")',
                                                       "has_identifier(crm)"]


def test_cli_check_and_preview(stored, tmp_path, capsys):
    path = tmp_path / "segments.toml"
    path.write_text(FILE)
    data = ["--data-dir", str(stored.data_dir)]
    assert main(["segments", "check", str(path), *data]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert list(checked) == ["EU with CRM", "EU mailable", "Not asked"]  # dependency order
    assert checked["EU with CRM"]["json"]["kind"] == "and"
    assert main(["segments", "preview", "--file", str(path), "--json", *data]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {n: r["count"] for n, r in report.items()} == {
        "EU with CRM": 1, "EU mailable": 1, "Not asked": 1}
    assert report["EU with CRM"]["samples"][0]["why"] == ['region in ("eu")',
                                                          "has_identifier(crm)"]


def test_cli_apply_list_show_preview_delete(stored, tmp_path, capsys):
    path = tmp_path / "segments.toml"
    path.write_text(FILE)
    data = ["--data-dir", str(stored.data_dir)]
    assert main(["segments", "apply", str(path), *data]) == 0
    out = capsys.readouterr().out
    assert "EU with CRM: created (version 1)" in out and "evaluated over" in out
    # applying the same file again is no change
    assert main(["segments", "apply", str(path), *data]) == 0
    assert "EU mailable: unchanged (version 1)" in capsys.readouterr().out
    assert main(["segments", "list", "--json", *data]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    # the stored memberships (kept by the writer) agree with the exact preview
    assert {n: sum(r["members"].values()) for n, r in listed.items()} == {
        "EU with CRM": 1, "EU mailable": 1, "Not asked": 1}
    assert all(r["built"] for r in listed.values())
    assert main(["segments", "preview", "EU mailable", "--json", *data]) == 0
    stored_view = json.loads(capsys.readouterr().out)["EU mailable"]
    assert stored_view["method"] == "memberships"  # built: read from the memberships
    assert main(["segments", "preview", "--file", str(path), "--only", "EU mailable",
                 "--json", *data]) == 0
    drafted = json.loads(capsys.readouterr().out)["EU mailable"]
    assert drafted["method"] == "evaluated"
    for key in ("count", "identifier_types", "overlap", "samples"):
        assert stored_view[key] == drafted[key], key
    assert stored_view["count"] == 1
    # an edit is a new version with a diff
    path.write_text(FILE.replace('consent("email") = granted', 'not consent("email") = denied'))
    assert main(["segments", "apply", str(path), *data]) == 0
    assert "EU mailable: changed (version 2)" in capsys.readouterr().out
    assert main(["segments", "show", "EU mailable", "--json", *data]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 2 and [v["version"] for v in shown["versions"]] == [1, 2]
    assert 'and consent("email") = granted\n+' in shown["last_change"]
    assert shown["uses"] == ["EU with CRM"]
    # deleting a segment others use is refused, naming them
    assert main(["segments", "delete", "EU with CRM", *data]) == 2
    assert "EU mailable" in capsys.readouterr().err
    assert main(["segments", "delete", "Not asked", *data]) == 0
    assert "Not asked: deleted (version 2)" in capsys.readouterr().out
    assert main(["segments", "list", "--json", *data]) == 0
    assert "Not asked" not in {r["name"] for r in json.loads(capsys.readouterr().out)}


def test_cli_names_the_segment_line_and_column_of_a_bad_definition(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[segments."Broken"]\ndefinition = """\nregion in ("eu")\nand country = = 3\n"""\n')
    assert main(["segments", "check", str(path), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "segment 'Broken'" in err and "line 2, column" in err and "expected" in err
    loop = tmp_path / "loop.toml"
    loop.write_text('[segments.A]\ndefinition = \'in_segment("B")\'\n'
                    '[segments.B]\ndefinition = \'in_segment("A")\'\n')
    assert main(["segments", "check", str(loop), "--data-dir", str(tmp_path / "d")]) == 2
    cycle = capsys.readouterr().err
    assert "'A' -> 'B' -> 'A'" in cycle or "'B' -> 'A' -> 'B'" in cycle


def _opened(email: str, event_id: str, when: datetime, campaign: str):
    from idgraph.resolver.model import Identifier, IdentityRecord

    return IdentityRecord(source="sendgrid", source_record_id=email, event_id=event_id,
                          event_time=when, identifiers=(Identifier("email", email),),
                          attributes={"email": email}, event_type="open",
                          properties={"campaign": campaign})


def test_event_segments_count_the_records_events(tmp_path):
    """Opens stored on the records are what event conditions count; an open older than
    the window does not count."""
    now = datetime.now(UTC)
    settings = Settings(data_dir=tmp_path / "d")
    with Engine(settings) as engine:
        engine.ingest(PEOPLE[:1] + [
            _opened("anna@acme.de", "o1", now - timedelta(days=2), "spring"),
            _opened("anna@acme.de", "o2", now - timedelta(days=5), "spring"),
            _opened("sam@x.com", "o3", now - timedelta(days=45), "winter"),
        ])
        profiles = [engine.queries.profile_with_all_events(p)
                    for p in engine.graph.profile_ids()]
    views, _ = preview({"Opened twice": parse('event("open").within(30d).count() >= 2'),
                        "Spring": parse('event("open").last(campaign) = "spring"'),
                        "Opened lately": parse('event("open").within(30d)')}, profiles, now)
    assert {n: v.count for n, v in views.items()} == {"Opened twice": 1, "Spring": 1,
                                                       "Opened lately": 1}


def test_ingest_keeps_events_within_the_configured_cap(tmp_path):
    now = datetime.now(UTC)
    settings = Settings(data_dir=tmp_path / "d")
    settings.survivorship = settings.survivorship.model_copy(update={"max_events_per_record": 2})
    with Engine(settings) as engine:
        engine.ingest([_opened("kim@x.com", f"k{i}", now - timedelta(hours=i), "c")
                       for i in range(3)])
        events = engine.store.get_records(["sendgrid:kim@x.com"])["sendgrid:kim@x.com"].events
    assert [e.event_id for e in events] == ["k1", "k0"]  # the newest two, oldest first


def test_exported_profiles_recount_the_stored_memberships_independently(stored, tmp_path,
                                                                         capsys):
    """What the issue's check does: segments applied, then counted again by hand from
    ``idgraph export --profiles`` (plain JSON, no segment code)."""
    import os
    import stat

    path = tmp_path / "segments.toml"
    path.write_text(FILE)
    data = ["--data-dir", str(stored.data_dir)]
    assert main(["segments", "apply", str(path), *data]) == 0
    out = tmp_path / "profiles.jsonl"
    assert main(["export", str(out), "--profiles", *data]) == 0
    capsys.readouterr()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600  # personal data: owner only
    profiles = [json.loads(line) for line in out.read_text().splitlines()]
    eu_crm = {p["profile_id"] for p in profiles if p["region"] == "eu"
              and any(i["type"].startswith("crm:") for i in p["identifiers"])}
    mailable = {p["profile_id"] for p in profiles if p["consent"].get("email") is True
                and (p["region"] == "eu" or p["profile_id"] in eu_crm)}
    not_asked = {p["profile_id"] for p in profiles if "email" not in p["consent"]
                 and p["profile_id"] not in eu_crm}
    assert main(["segments", "list", "--json", *data]) == 0
    counted = {r["name"]: sum(r["members"].values())
               for r in json.loads(capsys.readouterr().out)}
    assert counted == {"EU with CRM": len(eu_crm), "EU mailable": len(mailable),
                       "Not asked": len(not_asked)}
    assert all(counted.values())
