"""The ports of a process cluster (``billsync run --processes N --base-port P``): outside the
kernel's ephemeral range.

Each Bytewax process listens on its port of ``P .. P+N-1`` for the cluster's own traffic. A
port in the ephemeral range (Linux: ``net.ipv4.ip_local_port_range``, 32768-60999 by default)
is also what the kernel hands out as the local port of outgoing connections — the flow's own
Kafka and PostgreSQL connections, and every other process's on the host. Such a connection
that holds the port when a process of the cluster (re)starts makes its listen fail with
``Address already in use``; the other processes then fail too ("Send thread panic"), and a
supervisor's restart may fail the same way until the connection goes. Seen on 2026-12-01
with a plain two-process Bytewax cluster restarted on a test harness's ports:
``127.0.0.1:41138 -> 127.0.0.1:9092`` held one of them. So the cluster's ports are refused
in that range (a configuration error, told before anything starts), and tests pick theirs
below it (:func:`free_cluster_ports`).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 1024  # below: privileged ports


def ephemeral_range(path: Path = RANGE_FILE) -> range | None:
    """The kernel's ephemeral ports, or ``None`` where it does not say (not Linux)."""
    try:
        low, high = (int(v) for v in path.read_text().split())
    except (OSError, ValueError):
        return None
    return range(low, high + 1)


def clash(base: int, n: int, ephemeral: range | None) -> range | None:
    """The cluster's ports ``base .. base+n-1`` that lie in ``ephemeral`` (``None``: none)."""
    if ephemeral is None:
        return None
    lo, hi = max(base, ephemeral.start), min(base + n, ephemeral.stop)
    return range(lo, hi) if lo < hi else None


def check_cluster_ports(base: int, n: int, ephemeral: range | None = None) -> str | None:
    """Why ``base .. base+n-1`` cannot be the ports of an ``n``-process cluster, or ``None``."""
    ephemeral = ephemeral if ephemeral is not None else ephemeral_range()
    if base < LOWEST or base + n - 1 > 65535:
        ports = f"{base}..{base + n - 1}"
        return f"--base-port {base}: the cluster's ports {ports} are not in 1024..65535"
    inside = clash(base, n, ephemeral)
    if inside is None or ephemeral is None:
        return None
    return (
        f"--base-port {base}: the cluster's ports {base}..{base + n - 1} overlap the kernel's "
        f"ephemeral ports {ephemeral.start}..{ephemeral.stop - 1} (net.ipv4.ip_local_port_range), "
        "which outgoing connections take: a restart could find its port held and fail. Choose "
        f"ports below {ephemeral.start} (the default, 2101, is)"
    )


def _free(base: int, n: int) -> bool:
    socks = [socket.socket() for _ in range(n)]
    try:
        for i, s in enumerate(socks):
            s.bind(("127.0.0.1", base + i))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


# every port free_cluster_ports handed out in this process: a port is free when picked but
# stays unbound until its user starts, so without this a later pick could hand it out again
# (the e2e harness picks a flow's cluster ports and its metrics ports apart)
_handed_out: set[int] = set()


def free_cluster_ports(n: int, ephemeral: range | None = None) -> int:
    """The first of ``n`` consecutive loopback ports that are free now, outside the
    ephemeral range, and not handed out before by this process (tests and benches: one
    cluster each, picked at random from 20000 up to the range, so that concurrent runs
    seldom try the same)."""
    ephemeral = ephemeral if ephemeral is not None else ephemeral_range()
    low, top = 20000, 32768
    if ephemeral is not None:
        top = ephemeral.start
        if top - n <= low:  # a range that starts low: above it
            low, top = ephemeral.stop, 65536
    rnd = random.Random()  # noqa: S311  # a port to try, not a secret
    for _ in range(200 if top - n > low else 0):
        base = rnd.randrange(low, top - n)
        ports = range(base, base + n)
        if _handed_out.isdisjoint(ports) and clash(base, n, ephemeral) is None \
                and _free(base, n):  # fmt: skip
            _handed_out.update(ports)
            return base
    raise OSError(f"no {n} consecutive free loopback ports in {low}..{top - 1}")
