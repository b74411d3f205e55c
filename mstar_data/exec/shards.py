"""Deterministic shards: `--shard i/n` takes every n-th item from i of a sorted plan."""

from __future__ import annotations


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n), 0 <= i < n."""
    if not text:
        return 0, 1
    i, sep, n = text.partition("/")
    try:
        shard, count = int(i), int(n)
    except ValueError:
        shard, count = -1, 0
    if not sep or count < 1 or not 0 <= shard < count:
        raise ValueError(f"--shard '{text}': expected i/n with 0 <= i < n, e.g. 0/4")
    return shard, count
