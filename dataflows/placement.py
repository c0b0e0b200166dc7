"""Which Bytewax worker runs a key: so that the billing shards land on different workers.

Bytewax 0.21 routes a keyed item to worker ``hash(key) % workers``, the hash being Rust's
``DefaultHasher`` (SipHash-1-3 with zero keys) over the key's bytes and a ``0xff`` terminator
(``impl Hash for str``; ``src/operators.rs`` and ``src/timely.rs`` of bytewax 0.21.1). Names
like ``shard-0`` … ``shard-3`` all land on one worker of two, so the shards would share one
thread and one core. :func:`worker_of` computes the placement; ``dataflows/sharding.py``
names each shard so that shard ``i`` runs on worker ``i mod 8`` (so also ``mod 4`` and
``mod 2``). ``tests/unit/flow/test_sharding.py`` checks the computation against a running
Bytewax, so an upgrade that changes the routing fails that test instead of silently putting
every shard on one worker.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash13(data: bytes) -> int:
    """SipHash-1-3 of ``data`` with the keys (0, 0): Rust's ``DefaultHasher::new()``."""
    v0, v1 = 0x736F6D6570736575, 0x646F72616E646F6D
    v2, v3 = 0x6C7967656E657261, 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    end = len(data) - len(data) % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        sip_round()
        v0 ^= m
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[end:].ljust(8, b"\0"), "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        sip_round()
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker (of ``workers`` in the cluster) that Bytewax runs ``key``'s state on."""
    return siphash13(key.encode() + b"\xff") % workers
