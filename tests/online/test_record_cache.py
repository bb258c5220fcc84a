"""The record cache of the Redis store: what it holds, its byte count against a brute-force
sum, and eviction of the records learned first."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.online.record_cache import ENTRY_OVERHEAD, RecordCache

KEYS = st.sampled_from([b"a", b"bb", b"ccc", b"dddd", b"e"])
BATCHES = st.lists(st.tuples(st.sampled_from([b"v", b"w"]),
                             st.lists(st.tuples(KEYS, st.binary(max_size=40)), max_size=6,
                                      unique_by=lambda kv: kv[0])), max_size=12)


def size(key: bytes, version: bytes, record: bytes) -> int:
    return len(key) + len(version) + len(record) + ENTRY_OVERHEAD


@settings(max_examples=200, deadline=None)
@given(batches=BATCHES, cap=st.integers(0, 2_000))
def test_held_records_and_bytes_follow_a_brute_force_model(
        batches: list[tuple[bytes, list[tuple[bytes, bytes]]]], cap: int) -> None:
    cache = RecordCache(max_bytes=cap)
    model: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}  # insertion order = age
    for n, (field, items) in enumerate(batches):
        version = b"%d" % n
        keys = [k for k, _ in items]
        cache.keep(field, keys, [version] * len(keys), [r for _, r in items])
        for key, record in items:
            model.pop((field, key), None)
            model[(field, key)] = (version, record)
        total = sum(size(k, *v) for (_, k), v in model.items())
        # the records learned first go first, until the bytes fit
        for slot in list(model):
            if total <= cap:
                break
            total -= size(slot[1], *model.pop(slot))
        assert cache.size_bytes == total
        for (f, k), held in model.items():
            assert [h[:2] for h in cache.held(f, [k]) if h] == [held]
        assert len(cache) == len(model)


def test_forget_drops_one_field_and_its_bytes() -> None:
    cache = RecordCache()
    cache.keep(b"v", [b"a", b"b"], [b"1", b"1"], [b"xx", b"yyy"])
    cache.keep(b"w", [b"a"], [b"2"], [b"z"])
    cache.forget(b"v")
    assert cache.held(b"v", [b"a", b"b"]) == [None, None]
    assert [h[:2] for h in cache.held(b"w", [b"a"]) if h] == [(b"2", b"z")]
    assert cache.size_bytes == size(b"a", b"2", b"z")


def test_keep_new_leaves_what_is_held_and_adds_the_rest() -> None:
    cache = RecordCache()
    cache.keep(b"v", [b"a"], [b"2"], [b"newer"])
    cache.keep_new(b"v", [b"a", b"b"], [b"1", b"1"], [b"older", b""])
    assert [h[:2] for h in cache.held(b"v", [b"a", b"b"]) if h] == [(b"2", b"newer"),
                                                                   (b"1", b"")]
    assert cache.size_bytes == size(b"a", b"2", b"newer") + size(b"b", b"1", b"")
