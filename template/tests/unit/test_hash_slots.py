"""On a Redis Cluster one command reads keys of one hash slot only: the keys the service
reads together carry a common hash tag, so that they take one command. The slot is
computed as the cluster computes it (redis-py's CRC16 of the key or of its tag)."""

import time
import uuid

from redis.crc import key_slot

from app.core.cache import MemoryCache
from app.core.rate_limit import RequestWindow
from app.core.read_cache import ReadCache
from app.services.auth_service import rate_limit_caller
from app.services.user_service import user_snapshot_key

PREFIX = "service:"  # CACHE_KEY_PREFIX comes first in every key


def slot(key: str) -> int:
    return key_slot((PREFIX + key).encode())


def test_a_users_request_counters_and_snapshot_share_a_slot() -> None:
    user_id = uuid.uuid4()
    window = RequestWindow.at("600/minute", rate_limit_caller(user_id, None), time.time())
    route = RequestWindow.at("5/minute", f"upload:{rate_limit_caller(user_id, None)}", time.time())

    slots = {slot(key) for key in (window.current_key, window.previous_key, route.current_key)}
    assert slots == {slot(user_snapshot_key(user_id))}
    # Another user's keys are spread elsewhere (16384 slots: a collision is unlikely).
    assert slot(user_snapshot_key(uuid.uuid4())) != slot(user_snapshot_key(user_id))


def test_a_client_addresss_two_windows_share_a_slot() -> None:
    for address in ("203.0.113.7", "2001:db8::1", None):
        window = RequestWindow.at("120/minute", rate_limit_caller(None, address), time.time())
        assert slot(window.current_key) == slot(window.previous_key)


def test_a_cached_reads_generation_and_entry_share_a_slot() -> None:
    reads = ReadCache(MemoryCache(), "articles", ttl_seconds=60)
    key = str(uuid.uuid4())

    assert slot(reads._generation_key(key)) == slot(reads._entry_key(key))
