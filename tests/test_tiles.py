"""The shared tile cache: least recently used goes first, loads happen once per key while cached."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from spectralign_fast.io.tiles import LRUCache


def test_lru_order_and_capacity():
    loads = []
    cache = LRUCache(2)

    def loader(key):
        def load():
            loads.append(key)
            return key * 10
        return load

    assert cache.get(1, loader(1)) == 10
    assert cache.get(2, loader(2)) == 20
    assert cache.get(1, loader(1)) == 10  # hit: 1 is now the most recent
    assert cache.get(3, loader(3)) == 30  # evicts 2, the least recently used
    assert 1 in cache and 3 in cache and 2 not in cache and len(cache) == 2
    assert cache.get(2, loader(2)) == 20
    assert loads == [1, 2, 3, 2]


def test_failed_load_is_not_cached():
    cache = LRUCache(4)

    def broken():
        raise OSError("unreadable tile")

    for _ in range(2):
        try:
            cache.get("t", broken)
        except OSError:
            pass
    assert "t" not in cache and len(cache) == 0


def test_threads_share_one_cache():
    cache = LRUCache(8)
    with ThreadPoolExecutor(4) as pool:
        values = list(pool.map(lambda k: cache.get(k % 8, lambda: (k % 8) ** 2), range(400)))
    assert values == [(k % 8) ** 2 for k in range(400)]
    assert len(cache) == 8
