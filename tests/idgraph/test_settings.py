"""Settings layers: a file or an environment variable changes only what it names."""

from __future__ import annotations

import json
import os

import pytest
from helpers import record

from idgraph.cli import main
from idgraph.core.errors import ConfigError
from idgraph.engine import Engine
from idgraph.settings import Settings, load_settings

# The example `idgraph.toml` of the README (section Configuration), verbatim.
README_EXAMPLE = '''\
data_dir = "/var/lib/idgraph"

[regions]
default_region = "eu"
source_regions = { sendgrid = "eu" }

[linking.identifier_rules.phone]
links = false            # phones are attached for lookup but never merge profiles

[survivorship.rules]
job_title = "source_priority"
'''


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch):
    """Settings of the shell running the tests must not leak in."""
    for name in list(os.environ):
        if name.upper().startswith("IDGRAPH_"):
            monkeypatch.delenv(name)


@pytest.fixture()
def readme_file(tmp_path):
    path = tmp_path / "idgraph.toml"
    path.write_text(README_EXAMPLE)
    return path


def _write(tmp_path, text: str):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_readme_example_changes_only_what_it_names(readme_file):
    settings = load_settings(readme_file)
    defaults = Settings()
    rules = settings.linking.identifier_rules
    assert set(rules) == set(defaults.linking.identifier_rules)
    assert rules["phone"] == defaults.linking.identifier_rules["phone"].model_copy(
        update={"links": False})
    for kind, rule in defaults.linking.identifier_rules.items():
        if kind != "phone":
            assert rules[kind] == rule, kind
    assert settings.survivorship.rules == {**defaults.survivorship.rules,
                                           "job_title": "source_priority"}
    assert settings.regions.default_region == "eu"
    assert settings.regions.source_regions == {"sendgrid": "eu"}
    assert settings.regions.country_regions == defaults.regions.country_regions
    assert str(settings.data_dir) == "/var/lib/idgraph"
    untouched = ("normalization", "matching", "grpc", "stream", "neo4j", "cassandra")
    for section in untouched:
        assert getattr(settings, section) == getattr(defaults, section), section


ANN = [  # three sources sharing an email
    record("salesforce", "003A", "sf-1", 100, ["crm:salesforce:003A", "email:ann@acme.com"]),
    record("hubspot", "51", "hs-1", 200, ["crm:hubspot:51", "email:ann@acme.com"]),
    record("sendgrid", "ann@acme.com", "sg-1", 300, ["email:ann@acme.com"]),
]
PHONE_ONLY = [  # two people whose records share only a phone
    record("salesforce", "003B", "sf-2", 100, ["crm:salesforce:003B", "email:bo.lee@gmail.com",
                                                "phone:+14155550100"]),
    record("hubspot", "52", "hs-2", 200, ["crm:hubspot:52", "email:al.lee@outlook.com",
                                          "phone:+14155550100"]),
]


def _resolved(settings: Settings) -> tuple[set[str], str, str]:
    """Ingest ANN and PHONE_ONLY: the sources of Ann's profile, and the profile IDs of
    the two phone-sharing records."""
    with Engine(settings) as engine:
        engine.ingest(ANN + PHONE_ONLY)
        lookup = engine.queries.lookup
        ann = lookup("email:ann@acme.com").profile
        assert lookup("crm:salesforce:003A").profile.profile_id == ann.profile_id
        return ({s.source for s in ann.sources}, lookup("crm:salesforce:003B").profile.profile_id,
                lookup("crm:hubspot:52").profile.profile_id)


def test_readme_example_links_by_email_but_not_by_phone(readme_file, tmp_path):
    ann_sources, bo, al = _resolved(load_settings(readme_file, data_dir=tmp_path / "readme"))
    assert ann_sources == {"salesforce", "hubspot", "sendgrid"}  # one profile
    assert bo != al
    # the same records with the defaults: the shared phone does link them
    _, bo, al = _resolved(Settings(data_dir=tmp_path / "defaults"))
    assert bo == al


def test_environment_variable_merges_into_a_map_too(monkeypatch, readme_file):
    defaults = Settings()
    monkeypatch.setenv("IDGRAPH_LINKING__IDENTIFIER_RULES", '{"phone": {"max_per_profile": 2}}')
    monkeypatch.setenv("IDGRAPH_SURVIVORSHIP__RULES", '{"company": "most_frequent"}')
    settings = load_settings(readme_file)
    phone = settings.linking.identifier_rules["phone"]
    assert (phone.links, phone.max_per_profile, phone.priority) == (False, 2, 70)  # file + env
    assert settings.linking.identifier_rules["email"] == defaults.linking.identifier_rules["email"]
    assert settings.survivorship.rules["company"] == "most_frequent"
    assert settings.survivorship.rules["job_title"] == "source_priority"
    assert settings.survivorship.rules["email"] == defaults.survivorship.rules["email"]


def test_keyword_argument_wins_over_file_and_merges_the_same_way(readme_file):
    settings = load_settings(readme_file, linking={"identifier_rules": {"phone": {"links": True}}})
    assert settings.linking.identifier_rules["phone"].links is True
    assert len(settings.linking.identifier_rules) == len(Settings().linking.identifier_rules)


def test_map_entry_that_is_a_map_replaces_and_empty_table_empties(tmp_path):
    path = _write(tmp_path, '[cassandra.region_datacenters]\neu = { dc3 = 3 }\n\n'
                            '[normalization]\ndomain_aliases = {}\n')
    settings = load_settings(path)
    assert settings.cassandra.region_datacenters == {
        "eu": {"dc3": 3}, "uk": {"dc1": 1}, "us": {"dc2": 1}, "apac": {"dc2": 1}}
    assert settings.normalization.domain_aliases == {}


def test_unknown_nested_key_is_refused_naming_its_path_and_the_file(tmp_path):
    path = _write(tmp_path, "[linking.identifier_rules.phone]\nlnks = false\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "linking.identifier_rules.phone.lnks: unknown setting" in message
    assert str(path) in message


@pytest.mark.parametrize("text, dotted", [
    ("dta_dir = 'x'\n", "dta_dir"),
    ("[grpc]\nprt = 1\n", "grpc.prt"),
    ("[stream]\nbrokers = ['kafka://h:1']\nsasl_pasword = 'x'\n", "stream.sasl_pasword"),
])
def test_unknown_key_at_any_level_is_refused(tmp_path, text, dotted):
    with pytest.raises(ConfigError, match=rf"{dotted}: unknown setting \(in "):
        load_settings(_write(tmp_path, text))


def test_unknown_idgraph_variable_is_refused_and_others_are_ignored(monkeypatch):
    monkeypatch.setenv("IDGRAPH_TEST_NEO4J_USER", "someone")  # not a setting: no `__` path
    monkeypatch.setenv("IDGRAPH_SOMETHING", "1")
    monkeypatch.setenv("NOT_IDGRAPH__GRPC__PORT", "1")
    assert load_settings().grpc.port == 50051
    monkeypatch.setenv("IDGRAPH_GRPC__PRT", "1")
    with pytest.raises(ConfigError, match=r"grpc\.prt: unknown setting \(environment "
                                          r"variable IDGRAPH_GRPC__PRT\)"):
        load_settings()


def test_invalid_value_names_its_path_and_origin_but_not_the_value(tmp_path):
    path = _write(tmp_path, "[neo4j]\nmax_connection_pool_size = 'secret-looking'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "neo4j.max_connection_pool_size" in message and str(path) in message
    assert "secret-looking" not in message


@pytest.mark.parametrize("make, problem", [
    (lambda p: p / "missing.toml", "No such file or directory"),
    (lambda p: p, "Is a directory"),
    (lambda p: _write(p, "[grpc\n"), "invalid TOML"),
])
def test_unreadable_config_file_is_a_config_error_naming_it(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=problem) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_missing_file_in_idgraph_config_is_not_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("IDGRAPH_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml"):
        load_settings()


def test_explicit_config_file_wins_over_idgraph_config(monkeypatch, tmp_path, readme_file):
    monkeypatch.setenv("IDGRAPH_CONFIG", str(_write(tmp_path, "[grpc]\nport = 1234\n")))
    settings = load_settings(readme_file)
    assert settings.grpc.port == 50051
    assert settings.linking.identifier_rules["phone"].links is False


def test_settings_command_prints_effective_settings_with_secrets_masked(
        monkeypatch, capsys, readme_file):
    monkeypatch.setenv("IDGRAPH_NEO4J__PASSWORD", "hunter2-neo4j")
    monkeypatch.setenv("IDGRAPH_GRPC__API_TOKENS", '["tok-api-123"]')
    monkeypatch.setenv("IDGRAPH_GRPC__CLIENT_TOKEN", "tok-client-456")
    assert main(["settings", "--config", str(readme_file)]) == 0
    out = capsys.readouterr().out
    for secret in ("hunter2-neo4j", "tok-api-123", "tok-client-456"):
        assert secret not in out
    doc = json.loads(out)
    assert doc["neo4j"]["password"] == "**********"
    assert doc["grpc"]["api_tokens"] == ["**********"]
    assert doc["grpc"]["client_token"] == "**********"
    rules = doc["linking"]["identifier_rules"]
    assert rules["phone"] == {"links": False, "max_per_profile": 4, "shareable": False,
                              "priority": 70}
    assert rules["email"] == {"links": True, "max_per_profile": 6, "shareable": False,
                              "priority": 80}
    assert len(rules) == len(Settings().linking.identifier_rules)
    assert doc["data_dir"] == "/var/lib/idgraph"
    assert doc["survivorship"]["rules"]["job_title"] == "source_priority"


def test_settings_command_refuses_an_unknown_key(capsys, tmp_path):
    path = _write(tmp_path, "[linking.identifier_rules.phone]\nlnks = false\n")
    assert main(["settings", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "linking.identifier_rules.phone.lnks" in err[0] and str(path) in err[0]
