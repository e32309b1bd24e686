"""GenerationalMap: expiry by generations, survival of touched keys, eviction by capacity."""

from __future__ import annotations

import pytest

from collector.accounting.generations import GenerationalMap

TTL = 400  # four generations of 100 ns each


def _keys(m: GenerationalMap) -> set:
    """Every key held, read without touching (get() would move keys to the newest gen)."""
    return {k for gen in m._gens for k in gen}


def test_rejects_fewer_than_two_generations() -> None:
    with pytest.raises(ValueError):
        GenerationalMap(TTL, 10, generations=1)


def test_key_lives_until_the_ttl_then_expires_and_is_counted() -> None:
    m: GenerationalMap[int] = GenerationalMap(TTL, 100)
    m.tick(0)
    m.set("a", 1)
    m.set("b", 2)
    m.tick(TTL - 1)
    assert _keys(m) == {"a", "b"}
    assert len(m) == 2
    assert m.evicted == {"expired": 0, "capacity": 0}

    m.tick(TTL)
    assert _keys(m) == set()
    assert len(m) == 0
    assert m.get("a") is None
    assert m.evicted == {"expired": 2, "capacity": 0}


def test_a_long_silence_expires_everything_at_once() -> None:
    m: GenerationalMap[int] = GenerationalMap(TTL, 100)
    m.tick(0)
    for i in range(5):
        m.set(i, i)
        m.tick((i + 1) * 100 - 1)  # spread over the generations
    m.tick(10**12)
    assert len(m) == 0
    assert _keys(m) == set()
    assert m.evicted["expired"] == 5


def test_a_touched_key_survives_and_the_untouched_one_expires() -> None:
    m: GenerationalMap[str] = GenerationalMap(TTL, 100)
    m.tick(0)
    m.set("touched", "t")
    m.set("idle", "i")
    m.tick(250)
    assert m.get("touched") == "t"  # the read moves it into the newest generation
    m.tick(TTL)
    assert _keys(m) == {"touched"}
    assert m.evicted["expired"] == 1
    # at least ttl * (n-1) / n after the touch it is still there
    m.tick(250 + TTL * 3 // 4)
    assert _keys(m) == {"touched"}
    # and after a full TTL without a touch it is gone
    m.tick(250 + TTL + 100)
    assert _keys(m) == set()
    assert m.evicted["expired"] == 2


def test_set_of_an_existing_key_refreshes_it() -> None:
    m: GenerationalMap[int] = GenerationalMap(TTL, 100)
    m.tick(0)
    m.set("k", 1)
    m.tick(300)
    m.set("k", 2)
    assert len(m) == 1
    m.tick(500)
    assert m.get("k") == 2
    assert len(m) == 1
    assert m.evicted["expired"] == 0


def test_add_reports_duplicates() -> None:
    m: GenerationalMap[bool] = GenerationalMap(TTL, 100)
    m.tick(0)
    assert m.add("x") is True
    assert m.add("x") is False
    assert "x" in m
    assert "y" not in m
    assert len(m) == 1


def test_capacity_drops_the_oldest_generation_and_counts_it() -> None:
    m: GenerationalMap[int] = GenerationalMap(TTL, 3)
    m.tick(0)
    m.set("a", 1)
    m.set("b", 2)
    m.tick(100)
    m.set("c", 3)
    m.set("d", 4)  # 4 > 3: the generation holding a and b goes
    assert _keys(m) == {"c", "d"}
    assert len(m) == 2
    assert m.evicted == {"expired": 0, "capacity": 2}


def test_capacity_within_one_generation_keeps_the_size_exact() -> None:
    """All entries in the newest generation: it is cleared and only the new key remains.

    `len()` must equal the entries actually held, or the map believes it is full forever
    and wipes itself on every later insert (losing all dedupe state)."""
    m: GenerationalMap[int] = GenerationalMap(TTL, 2)
    m.tick(0)
    m.set("a", 1)
    m.set("b", 2)
    m.set("c", 3)
    assert _keys(m) == {"c"}
    assert m.evicted["capacity"] == 2
    assert len(m) == len(_keys(m)) == 1

    m.set("d", 4)  # room for a second entry: nothing needs to go
    assert _keys(m) == {"c", "d"}
    assert len(m) == 2
    assert m.evicted["capacity"] == 2


def test_size_tracks_entries_through_expiry_and_capacity() -> None:
    m: GenerationalMap[int] = GenerationalMap(TTL, 5)
    m.tick(0)
    now = 0
    for i in range(40):
        m.set(i, i)
        if i % 3 == 0:
            m.get(i // 2)  # touch an older key now and then
        now += 37
        m.tick(now)
        assert len(m) == len(_keys(m)) <= 5
    total = sum(m.evicted.values())
    assert total == 40 - len(m)
