"""The key store seam (:mod:`idgraph.auth.store`) run against every backend."""

from __future__ import annotations

import dataclasses

import pytest

from idgraph.auth.keys import ApiKey, KeyNotFoundError, KeyRequestError


def key(key_id: str, created: float = 100.0, **kw) -> ApiKey:
    return ApiKey(key_id=key_id, owner="crm sync", roles=("activation",), created_at=created,
                  expires_at=created + 1000, secret_hash="ab" * 32, **kw)


def test_insert_get_and_list_in_creation_order(store_factory):
    store = store_factory()
    store.insert(key("K2", created=200.0, regions=("eu",)))
    store.insert(key("K1", created=100.0, unmask=False, rate_per_second=5.0))
    assert store.get("K2") == key("K2", created=200.0, regions=("eu",))
    assert store.get("K3") is None
    assert [k.key_id for k in store.list_keys()] == ["K1", "K2"]
    assert store.list_keys()[0].rate_per_second == 5.0


def test_an_existing_id_is_refused_and_left_alone(store_factory):
    store = store_factory()
    store.insert(key("K1"))
    with pytest.raises(KeyRequestError, match="K1 exists"):
        store.insert(dataclasses.replace(key("K1"), owner="someone else"))
    assert store.get("K1").owner == "crm sync"


def test_replace_is_seen_by_another_process_at_once(store_factory):
    writer, reader = store_factory(), store_factory()
    writer.insert(key("K1"))
    assert reader.get("K1").revoked_at is None
    writer.replace(dataclasses.replace(key("K1"), revoked_at=150.0, revoked_by="key:A"))
    assert reader.get("K1").revoked_at == 150.0
    with pytest.raises(KeyNotFoundError):
        writer.replace(key("K9"))


def test_last_used_keeps_the_latest(store_factory):
    store = store_factory()
    store.insert(key("K1"))
    store.insert(key("K2"))
    store.mark_used({"K1": 500.0})
    store.mark_used({"K1": 400.0, "K2": 450.0})
    assert store.last_used(["K1", "K2", "K3"]) == {"K1": 500.0, "K2": 450.0}
    assert store.last_used([]) == {}
